"""The first matcher: which brands does an item mention?

Owns ``Matcher``, built once from every brand's terms and exclusions. Rules:

- Terms, phrases and exclusions are compared after ``normalize_for_match`` on both sides: invisible
  characters removed, NFKC, casefolded, whitespace runs collapsed to one space. So matching is
  case-insensitive ("MÜLLER" finds "Müller", "STRASSE" finds "Straße"), survives zero-width
  characters inside a name, and a phrase ("Kryptonite lock") matches across line breaks.
- Whole words only: at an edge where a term begins (ends) with a word character, the character
  before (after) the occurrence must not be one. Word characters are letters, digits, "_" and
  combining marks. "lock" does not match "locks" or "unlock"; list plural or compound forms as
  terms of their own. Edges made of other characters need no boundary, so "#kryptonitelock",
  "@brand" and "C++" work as terms ("C++" still does not match inside "abc++").
- A brand matches when one of its terms occurs in the title or the text and none of its
  exclusions occurs in either. The title and the text are matched separately: a phrase never
  spans from the end of the title into the text.
- Terms that are empty after normalisation are ignored (config validation rejects them earlier).

All terms of all brands live in one Aho-Corasick automaton, so one pass over an item's text finds
every occurrence of every term, overlapping ones included, whatever the number of brands.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import ahocorasick

from listener.matching.normalize import normalize_for_match
from listener.models import BrandTerms, Item

__all__ = ["Matcher"]

# Separates title and text in the scanned string. Whitespace is collapsed to single spaces before
# scanning, so no normalised term can contain it, and it is not a word character.
_FIELD_SEPARATOR = "\n"


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_" or unicodedata.category(char).startswith("M")


class _Key:
    """What the automaton returns for one normalised term."""

    __slots__ = ("check_after", "check_before", "length", "owners")

    def __init__(self, term: str) -> None:
        self.length = len(term)
        self.check_before = _is_word_char(term[0])
        self.check_after = _is_word_char(term[-1])
        # (brand index, is_exclusion) for every brand that lists this term.
        self.owners: list[tuple[int, bool]] = []


class Matcher:
    """Finds the names of the brands an item mentions. Build once, call ``match`` many times."""

    def __init__(self, brands: Sequence[BrandTerms]) -> None:
        self._names: tuple[str, ...] = tuple(brand.name for brand in brands)
        keys: dict[str, _Key] = {}
        for index, brand in enumerate(brands):
            for terms, is_exclusion in ((brand.terms, False), (brand.exclude, True)):
                for raw in terms:
                    term = normalize_for_match(raw)
                    if not term:
                        continue
                    key = keys.get(term)
                    if key is None:
                        key = keys[term] = _Key(term)
                    if (index, is_exclusion) not in key.owners:
                        key.owners.append((index, is_exclusion))
        self._automaton: ahocorasick.Automaton | None = None
        if keys:
            automaton = ahocorasick.Automaton()
            for term, key in keys.items():
                automaton.add_word(term, key)
            automaton.make_automaton()
            self._automaton = automaton

    def match(self, title: str, text: str) -> frozenset[str]:
        """Return the names of the brands whose terms occur in ``title`` or ``text``."""
        automaton = self._automaton
        if automaton is None:
            return frozenset()
        haystack = normalize_for_match(title) + _FIELD_SEPARATOR + normalize_for_match(text)
        last = len(haystack) - 1
        found: set[int] = set()
        excluded: set[int] = set()
        for end, key in automaton.iter(haystack):
            if key.check_after and end < last and _is_word_char(haystack[end + 1]):
                continue
            start = end - key.length + 1
            if key.check_before and start > 0 and _is_word_char(haystack[start - 1]):
                continue
            for index, is_exclusion in key.owners:
                (excluded if is_exclusion else found).add(index)
        if not found:
            return frozenset()
        return frozenset(self._names[index] for index in found - excluded)

    def match_item(self, item: Item) -> frozenset[str]:
        """``match`` on the item's title and text."""
        return self.match(item.title, item.text)
