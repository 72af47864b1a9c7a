"""Untrusted text (everything a source returns) made safe for a terminal.

C0/C1 control characters (escape sequences), bidi overrides and isolates, zero-width and other
invisible formatting characters are removed or replaced; newlines and tabs become spaces unless
asked to keep newlines.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff"
    "\ufff9-\ufffb]"
)
_BREAKS = re.compile(r"[\t\n\r]+")


def for_terminal(text: str, *, keep_newlines: bool = False) -> str:
    """Text with every character that could steer a terminal removed."""
    text = text.replace("\r\n", "\n")
    if not keep_newlines:
        text = _BREAKS.sub(" ", text)
    else:
        text = text.replace("\t", " ").replace("\r", "\n")
    return _UNSAFE.sub("", text)


def escape_json_unsafe(text: str) -> str:
    """Inside JSON text produced with ensure_ascii=False: write terminal-unsafe characters as
    \\uXXXX escapes (still valid JSON, same data)."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
