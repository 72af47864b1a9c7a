"""Untrusted text (everything a source returns) made safe for a terminal.

Removed (or, in JSON, written as ``\\uXXXX`` escapes): every control and invisible formatting
character class: C0 and C1 controls and DEL (with whole ANSI escape sequences: CSI, OSC and
other ESC sequences go as one, leaving a space where they stood between two words), Unicode
format characters (category Cf: bidi embeddings, overrides, isolates and marks, zero-width
space/joiners, word joiner, invisible operators, soft hyphen, BOM, Arabic/Syriac format marks,
interlinear annotation, tags U+E0000-E007F), line/paragraph separators, lone surrogates, the
invisible fillers (U+034F, U+115F/U+1160, U+17B4/U+17B5, U+180B-U+180F, U+3164, U+FFA0) and the
supplementary variation selectors (U+E0100-E01EF, usable to smuggle bytes). Emoji variation
selectors (U+FE00-U+FE0F) stay. Newlines and tabs become spaces unless asked to keep newlines.
Matching has its own, narrower rule (``matching.normalize``): there zero-width characters join
the letters around them.
"""

from __future__ import annotations

import re

# Unicode 14 (Python 3.11): categories Cc (but \t \n \r), Cf, Zl, Zp, Cs, plus the fillers above.
_UNSAFE_CLASS = (
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891"
    "\u08e2\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164"
    "\ud800-\udfff\ufeff\uffa0\ufff0-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e007f\U000e0100-\U000e01ef"
)
_UNSAFE = re.compile(f"[{_UNSAFE_CLASS}]")
# ESC sequences as terminals parse them: CSI (ESC [ or U+009B ... final byte), OSC/DCS/PM/APC
# strings (ESC ] P ^ _ ... BEL or ST), and two-character escapes.
_ESCAPE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]P^_]|[\x90\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
_BREAKS = re.compile(r"[\t\n\r]+")


def _drop_escape(match: re.Match[str]) -> str:
    """An escape sequence between two word characters leaves a space, so words stay apart."""
    text, start, end = match.string, match.start(), match.end()
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    return " " if before.isalnum() and after.isalnum() else ""


def without_escapes(text: str) -> str:
    """``text`` without terminal escape sequences (each removed whole; a space where one stood
    between two letters or digits). For stages that clean text before matching, so that
    "Evil\x1b[31mKryptonite" becomes "Evil Kryptonite", not "Evil[31mKryptonite"."""
    if "\x1b" in text or "\x9b" in text or "\x90" in text or "\x9d" in text:
        return _ESCAPE.sub(_drop_escape, text)
    return text


def for_terminal(text: str, *, keep_newlines: bool = False) -> str:
    """Text with every character that could steer a terminal, or hide in it, removed."""
    text = without_escapes(text.replace("\r\n", "\n"))
    if not keep_newlines:
        text = _BREAKS.sub(" ", text)
    else:
        text = text.replace("\t", " ").replace("\r", "\n")
    return _UNSAFE.sub("", text)


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON has no escape above U+FFFF: a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def escape_json_unsafe(text: str) -> str:
    """Inside JSON text produced with ensure_ascii=False: write terminal-unsafe characters as
    \\uXXXX escapes (still valid JSON, same data)."""
    return _UNSAFE.sub(_json_escape, text)
