"""Brand matching and deduplication: text normalisation, the term matcher, dedup keys.

Pure functions and values only: no I/O, no clock. Imports nothing of listener but ``models`` and
``errors``.

- ``normalize``: the one text folding used for terms, mention text and title-based dedup keys.
- ``Matcher``: which brands an item mentions (terms, phrases, exclusions; whole words).
- ``canonical_url``, ``dedup_key``, ``content_hash``: when two items are the same item, and when
  an item's content changed.
"""

from __future__ import annotations

from listener.matching.dedup import canonical_url, content_hash, dedup_key
from listener.matching.matcher import Matcher
from listener.matching.normalize import normalize

__all__ = ["Matcher", "canonical_url", "content_hash", "dedup_key", "normalize"]
