"""New terms: the words a window of mentions uses that the period before it did not (for alert
messages and reports: "recall", "fire" appearing overnight says more than a count).

Owns ``new_terms``. Pure: texts in, words out. A word is four or more letters, case-folded; it
counts once per text; it is new when at least two texts of the window use it, the period before
never did, and it is neither a common English/German word nor part of the brand's name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

__all__ = ["new_terms"]

_WORD = re.compile(r"[^\W\d_]{4,}", re.UNICODE)
_COMMON = frozenset(
    "this that with have from they been were what when will would there their about which "
    "your just like than then them also only into more some very after before because could "
    "should über eine einer einem einen nicht noch sich sind wird wurde haben auch aber oder "
    "dass wenn mehr schon immer heute".split()
)


def _words(text: str) -> set[str]:
    return {word.casefold() for word in _WORD.findall(text)}


def new_terms(
    window: Iterable[str], before: Iterable[str], brand: str, limit: int
) -> tuple[str, ...]:
    """Up to ``limit`` new words of ``window`` (texts), most used first, then alphabetical."""
    seen: Counter[str] = Counter()
    for text in window:
        seen.update(_words(text))
    known = set().union(*(_words(text) for text in before))
    own = _words(brand)
    fresh = [
        (n, w) for w, n in seen.items() if n >= 2 and w not in known and w not in own
        and w not in _COMMON
    ]  # fmt: skip
    return tuple(w for _, w in sorted(fresh, key=lambda x: (-x[0], x[1]))[:limit])
