"""Text normalisation for matching and dedup: the one place deciding when two strings are equal.

Owns ``normalize`` (and its whitespace-collapsing sibling ``normalize_for_match``). Rules, in order:

1. delete invisible format characters that people (and spammers) put inside words: zero-width
   space/joiners and LRM/RLM (U+200B-U+200F), bidi embeddings/overrides (U+202A-U+202E), word
   joiner and invisible operators (U+2060-U+2064), bidi isolates (U+2066-U+2069), BOM (U+FEFF) and
   the soft hyphen (U+00AD);
2. Unicode NFKC, so compatibility forms (full-width letters, ligatures, NBSP) become plain ones;
3. ``str.casefold``, so "MÜLLER" == "müller" and "STRASSE" == "straße".

Future folding (German umlaut transliteration, homoglyphs) belongs here and nowhere else, so brand
terms and mention text are always folded the same way. Pure ASCII input takes a fast path
(``str.lower``), which gives the same result as the full rules for ASCII.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize", "normalize_for_match"]

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


def normalize(text: str) -> str:
    """Return ``text`` without invisible format characters, NFKC-normalised and casefolded."""
    if text.isascii():
        return text.lower()
    # Invisible characters are all category Cf, which makes ``isprintable`` false.
    if not text.isprintable() and _HAS_INVISIBLE.search(text):
        # Delete first so that characters split by an invisible one can compose under NFKC.
        text = text.translate(_DELETE_INVISIBLE)
    return unicodedata.normalize("NFKC", text).casefold()


def normalize_for_match(text: str) -> str:
    """``normalize`` and then collapse every run of whitespace to one space, trimming the ends.

    Used on both brand terms and mention text, so a phrase matches across line breaks and
    repeated spaces.
    """
    folded = normalize(text)
    # Fast path: every whitespace character but " " is unprintable, so a printable text without
    # double spaces has nothing to collapse.
    if folded.isprintable() and "  " not in folded:
        return folded.strip(" ")
    return " ".join(folded.split())
