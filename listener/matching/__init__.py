"""Brand matching and deduplication: query language, text normalisation, the matcher, dedup keys.

Pure functions and values only: no I/O, no clock. Imports nothing of listener but ``models`` and
``errors``.

- ``normalize``: text folding; ``fold`` for matching, ``normalize`` for title-based dedup keys.
- ``tokens``: how folded text splits into words, hashtags and handles.
- ``query``: the brand query language: ``parse_query``, ``format_query``, ``terms_query``.
- ``Matcher``: which brands a ``Document`` mentions, all brand queries evaluated together.
- ``canonical_url``, ``dedup_key``, ``content_hash``, ``entry_anchor``: when two items are the
  same item (a comment on a page is not the page), and when an item's content changed.
"""

from __future__ import annotations

from listener.matching.dedup import canonical_url, content_hash, dedup_key, entry_anchor
from listener.matching.matcher import Document, Matcher
from listener.matching.normalize import fold, normalize
from listener.matching.query import (
    Query,
    QuerySyntaxError,
    format_query,
    parse_query,
    terms_query,
)

__all__ = [
    "Document",
    "Matcher",
    "Query",
    "QuerySyntaxError",
    "canonical_url",
    "content_hash",
    "dedup_key",
    "entry_anchor",
    "fold",
    "format_query",
    "normalize",
    "parse_query",
    "terms_query",
]
