"""Text normalisation for matching and dedup: the one place deciding when two strings are equal.

Owns ``normalize`` (used for title-based dedup keys) and ``fold`` (used for brand queries and
mention text alike, so both sides are always folded the same way).

``normalize`` applies, in order:

1. delete invisible format characters that people (and spammers) put inside words: zero-width
   space/joiners and LRM/RLM (U+200B-U+200F), bidi embeddings/overrides (U+202A-U+202E), word
   joiner and invisible operators (U+2060-U+2064), bidi isolates (U+2066-U+2069), BOM (U+FEFF) and
   the soft hyphen (U+00AD);
2. Unicode NFKC, so compatibility forms (full-width letters, ligatures, NBSP) become plain ones;
3. ``str.casefold``, so "MÜLLER" == "müller" and "STRASSE" == "straße" == "strasse".

``fold`` is ``normalize`` followed by two foldings that make matching forgiving:

4. homoglyphs: Cyrillic and Greek letters that look like Latin ones become those Latin letters
   after casefolding (Cyrillic а в е к м н о р с т у х і ј ѕ, Greek α β ε ζ η ι κ μ ν ο ρ τ υ χ,
   and so their capitals; see ``HOMOGLYPHS``). They are folded *always*, not only in words that
   mix scripts: simple, fast and symmetric (a Cyrillic query still matches a Cyrillic text).
   The price: some genuinely different Cyrillic/Greek words fold alike. Where a Greek small
   letter and its capital look like different Latin letters (η/Η, ν/Ν, μ/Μ, υ/Υ) the capital's
   look wins ("ΝΙΚΕ" is "nike"), since folding must not depend on case. Combining marks NFKC
   cannot compose (Indic vowel signs, Hebrew/Arabic points, stray accents) are removed, so
   words stay whole tokens;
5. German: ä → ae, ö → oe, ü → ue (ß already became "ss" in step 3), so "Müller", "Mueller" and
   "MUELLER" are equal. Other accents are kept ("café" is not "cafe").

Pure ASCII input takes a fast path (``str.lower``), which gives the same result as the full
rules for ASCII: the text of every fetched entry goes through ``fold``. Latin-1 input (most of
western Europe's text) takes another: the rules map each Latin-1 character on its own (none
composes with a neighbour), so a byte translation table of their results does it, and the few
characters that become several (ä, ö, ü, ß, the soft hyphen) are replaced after; text with ¼, ½
or ¾ (which become non-Latin-1 characters) takes the full rules.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["HOMOGLYPHS", "fold", "normalize"]

_INVISIBLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x200B, 0x200F),  # zero-width space, ZWNJ, ZWJ, LRM, RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x2064),  # word joiner, invisible operators
    (0x2066, 0x2069),  # bidi isolates
    (0xFEFF, 0xFEFF),  # byte-order mark / zero-width no-break space
)

_DELETE_INVISIBLE: dict[int, None] = {
    cp: None for first, last in _INVISIBLE_RANGES for cp in range(first, last + 1)
}

# A regex search finds out cheaply whether there is anything to delete; ``str.translate`` with a
# dict walks the text in Python-object steps and is ten times slower on non-ASCII text.
_HAS_INVISIBLE = re.compile(
    "[" + "".join(f"{chr(first)}-{chr(last)}" for first, last in _INVISIBLE_RANGES) + "]"
)

HOMOGLYPHS: dict[str, str] = {
    # Cyrillic (small letters; capitals casefold to them)
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
    # Greek: the letter a capital looks like wins where small and capital differ (η ν μ υ)
    "α": "a", "β": "b", "ε": "e", "ζ": "z", "η": "h", "ι": "i", "κ": "k", "μ": "m", "ν": "n",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "y", "χ": "x",
}  # fmt: skip
_HOMOGLYPH_TABLE: dict[int, str] = {ord(k): v for k, v in HOMOGLYPHS.items()}
_HAS_HOMOGLYPH = re.compile("[" + "".join(HOMOGLYPHS) + "]")
_GERMAN: tuple[tuple[str, str], ...] = (("ä", "ae"), ("ö", "oe"), ("ü", "ue"))


def normalize(text: str) -> str:
    """Return ``text`` without invisible format characters, NFKC-normalised and casefolded."""
    if text.isascii():
        return text.lower()
    # Invisible characters are all category Cf, which makes ``isprintable`` false.
    if not text.isprintable() and _HAS_INVISIBLE.search(text):
        # Delete first so that characters split by an invisible one can compose under NFKC.
        text = text.translate(_DELETE_INVISIBLE)
    return unicodedata.normalize("NFKC", text).casefold()


def _ranges(chars: list[str]) -> str:
    """The body of a regex character class matching exactly ``chars`` (ascending)."""
    ranges: list[list[str]] = []
    for char in chars:
        if ranges and ord(ranges[-1][1]) + 1 == ord(char):
            ranges[-1][1] = char
        else:
            ranges.append([char, char])
    return "".join(f"{first}-{last}" if first != last else first for first, last in ranges)


def _special_chars() -> tuple[list[str], str, str]:
    """The characters ``fold`` must treat specially, a regex class of them, one of the marks.

    Special: invisible characters, homoglyphs, combining marks, characters whose NFKC form or
    casefolding yields one of those ("İ" casefolds to "i" and a combining dot, "µ" is NFKC "μ"),
    and everything beyond the BMP (not examined one by one, to keep importing fast). Marks:
    those of planes 0 and 1 and the variation selectors supplement.
    """
    special = set(_DELETE_INVISIBLE) | set(_HOMOGLYPH_TABLE)
    slow: list[str] = []
    marks: list[str] = []
    category, decomposition = unicodedata.category, unicodedata.decomposition
    for cp in range(0x80, 0x10000):
        char = chr(cp)
        if category(char)[0] == "M":
            marks.append(char)
            slow.append(char)
        elif cp in special:
            slow.append(char)
        elif decomposition(char) or char.casefold() != char:
            folded = unicodedata.normalize("NFKC", char).casefold()
            if any(ord(c) in special or category(c)[0] == "M" for c in folded):
                slow.append(char)
    beyond = [chr(cp) for cp in range(0x10000, 0x20000) if category(chr(cp))[0] == "M"]
    beyond += [chr(cp) for cp in range(0xE0100, 0xE01F0)]  # variation selectors supplement
    return slow, _ranges(slow) + "\U00010000-\U0010ffff", _ranges(marks + beyond)


_SLOW_CHARS, _SLOW_CLASS, _MARK_CLASS = _special_chars()
# In Latin-1 text (most of western Europe's) only these few characters need the slow path.
_LATIN1_SLOW: tuple[str, ...] = tuple(c for c in _SLOW_CHARS if c <= "\xff")
_NEEDS_SLOW = re.compile(f"[{_SLOW_CLASS}]")
_MARKS = re.compile(f"[{_MARK_CLASS}]")


def _latin1_table() -> tuple[bytes, tuple[tuple[bytes, bytes], ...]]:
    """A bytes translation table folding Latin-1 characters that fold to one Latin-1
    character, and the replacements of those that fold to several (after the table)."""
    table = bytearray(range(256))
    several: list[tuple[bytes, bytes]] = []
    for code in range(256):
        folded = _fold_full(chr(code))
        if len(folded) == 1:
            table[code] = ord(folded)  # all Latin-1: asserted by the tests
        elif all(c <= "\xff" for c in folded) and code not in (0xC4, 0xD6, 0xDC):
            several.append((bytes([code]), folded.encode("latin-1")))
        else:  # Ä, Ö, Ü become ä, ö, ü here and "ae", "oe", "ue" with them
            table[code] = ord(chr(code).lower()) if code in (0xC4, 0xD6, 0xDC) else code
    return bytes(table), tuple(several)


def fold(text: str) -> str:
    """``normalize`` plus homoglyph and German folding: the form queries and texts meet in."""
    if text.isascii():
        return text.lower()
    try:
        data = text.encode("latin-1")  # a C-speed test, much faster than a regex search
    except UnicodeEncodeError:
        pass
    else:
        if b"\xbc" not in data and b"\xbd" not in data and b"\xbe" not in data:
            data = data.translate(_LATIN1_TABLE)
            for char, folded in _LATIN1_SEVERAL:
                if char in data:
                    data = data.replace(char, folded)
            return data.decode("latin-1")
    return _fold_full(text)


def _fold_full(text: str) -> str:
    """``fold`` by the rules themselves (what the fast paths must equal)."""
    if text.isascii():
        return text.lower()
    try:
        text.encode("latin-1")  # a C-speed test, much faster than a regex search
    except UnicodeEncodeError:
        fast = _NEEDS_SLOW.search(text) is None
    else:
        fast = not any(char in text for char in _LATIN1_SLOW)
    # Fast: no invisible characters, homoglyphs or marks, and none can arise from NFKC/casefold.
    text = unicodedata.normalize("NFKC", text).casefold() if fast else _fold_slow(text)
    for umlaut, spelled in _GERMAN:
        if umlaut in text:
            text = text.replace(umlaut, spelled)
    return text


def _fold_slow(text: str) -> str:
    if _HAS_INVISIBLE.search(text):
        text = text.translate(_DELETE_INVISIBLE)
    # Casefolding can decompose ("ΐ" becomes "ι" and two marks): compose again, as Unicode's
    # NFKC_Casefold does, so that a letter and its capital fold alike.
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    if _HAS_HOMOGLYPH.search(text):
        text = text.translate(_HOMOGLYPH_TABLE)
    # Marks NFKC could not compose (vowel signs, niqqud, stray accents) go, so words stay whole.
    # Umlauts are precomposed by now: "ü" stays "ü" and becomes "ue" afterwards.
    return _MARKS.sub("", text)


_LATIN1_TABLE, _LATIN1_SEVERAL = _latin1_table()
