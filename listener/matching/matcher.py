"""Which brands does a document mention? Many brand queries, evaluated together.

Owns ``Document`` (what one item offers to queries) and ``Matcher``, built once from every
brand's parsed query and mute lists. Rules:

- The query language and its meaning are documented in ``query``; texts and query words are
  compared after ``normalize.fold`` and split into tokens by ``tokens``.
- A brand matches when its query matches, the document's author (folded) is not one of its muted
  authors (a leading "@" is ignored on both sides), and the URL's host is neither one of its
  muted domains nor a subdomain of one.
- Title, text and author are separate fields: a phrase or NEAR never spans from one into the next.

Speed: every query yields *anchor clauses* (``anchor_clauses``): sets of folded strings such that
every document the query matches contains a member of each set in its folded title, text or
author. A word gives its longest token, a wildcard its stem; AND and NEAR collect their
children's clauses, OR one clause with one clause of each child; NOT, ``raw:`` and metadata
fields give none, and a query without clauses is evaluated on every document. One Aho-Corasick
automaton (ahocorasick_rs, DFA) over all anchors of all brands scans each document's folded
title and text (and author, if some query searches it) once; a query is indexed under its most
selective clause and becomes a candidate when that clause and all its others have a hit. Only
candidates are evaluated: each term, phrase, wildcard and NEAR is one precompiled regular
expression over the folded fields, starting with its literal so ``re`` can skip ahead.

Screening: ``screen`` tells, from a cheap stand-in for an entry's title and text (the feed
parser's raw fields through ``sources.html.text_pieces``), that no brand can match it, so the
entry need not be built nor matched. It answers "cannot match" only when no anchor occurs in the
folded pieces, and only when that proves it: every brand has anchor clauses (so none is
evaluated on every document), no query searches the author (the pieces hold title and text
only), every anchor is word characters (which no dropped tag, collapsed space or separator can
be part of), and the pieces are Latin-1 or typographic punctuation (where ``fold`` maps each
character on its own, so folding the pieces folds every piece of the real text alike).

Size: over 400 lines on purpose: the anchor index and the evaluator must agree on what a query
can match (an anchor the evaluator does not honour loses matches), so they change together.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from urllib.parse import urlsplit

import ahocorasick_rs

from listener.matching.normalize import fold
from listener.matching.query import (
    And,
    Field,
    Near,
    Not,
    Or,
    Phrase,
    Query,
    Raw,
    Term,
    Wildcard,
)
from listener.matching.tokens import WORD, is_word_char, tokenize

__all__ = ["Document", "Matcher", "anchor_clauses"]

_DEFAULT_FIELDS: tuple[str, ...] = ("title", "text")
# Joins the folded fields in the scanned string. It is removed from the fields first, so it
# occurs nowhere else; it is not a word character, and no pattern crosses it.
_SEPARATOR = "\x00"
# General punctuation (dashes, quotes, ellipsis): never part of a word, after fold or before.
_PUNCTUATION = re.compile("[\u2010-\u2027]")
_WORD_CHARS = re.compile(f"[{WORD}]+")


@dataclass(frozen=True, slots=True)
class Document:
    """What one item offers to queries; ``source`` is the name of the source it came from."""

    title: str
    text: str
    author: str | None
    url: str | None
    language: str | None
    source: str
    article_url: str | None = None  # the page a post links to (site: and url: see it too)


class _View:
    """One document's folded fields and URL host, each computed at most once.

    ``title_text`` is the folded title and text joined by ``_SEPARATOR``, which no folded field
    contains and no pattern crosses.
    """

    __slots__ = ("_article_host", "_author", "_host", "_parts", "doc", "title_text")

    def __init__(self, doc: Document, title_text: str, author: str | None) -> None:
        self.doc = doc
        self.title_text = title_text
        self._author = author
        self._parts: list[str] | None = None
        self._host: str | None = None
        self._article_host: str | None = None

    def field(self, name: str) -> str:
        """The folded ``name`` field ("title", "text" or "author")."""
        if name == "author":
            if self._author is None:
                self._author = fold(_clean(self.doc.author or ""))
            return self._author
        if self._parts is None:
            self._parts = self.title_text.split(_SEPARATOR)
        return self._parts[0 if name == "title" else 1]

    def original(self, field: str) -> str:
        if field == "title":
            return self.doc.title
        return self.doc.text if field == "text" else self.doc.author or ""

    def language(self) -> str:
        """The primary subtag of the document's language, lower-cased ("de" for "de-AT")."""
        return (self.doc.language or "").lower().replace("_", "-").partition("-")[0].strip()

    def host(self) -> str:
        if self._host is None:
            self._host = _host_of(self.doc.url)
        return self._host

    def article_host(self) -> str:
        if self._article_host is None:
            self._article_host = _host_of(self.doc.article_url)
        return self._article_host


def _host_of(url: str | None) -> str:
    """The host of ``url`` without a trailing dot; "" when there is none."""
    if not url:
        return ""
    try:
        return (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return ""


def _clean(text: str) -> str:
    return text.replace(_SEPARATOR, " ") if _SEPARATOR in text else text


_Eval = Callable[[_View], bool]

# --- leaves: a term, phrase or wildcard as a regular expression over folded text ----------------
#
# Patterns start with their literal where they can: Python's ``re`` then skips ahead with a fast
# substring search, ~25x faster than a pattern opening with a look-behind. "Not after a word
# character" is therefore written as a look-behind *after* the literal.

_W = f"[{WORD}]"
_NOT_W = f"(?![{WORD}])"
_GAP = f"[^{WORD}{_SEPARATOR}]+"  # between two tokens of one field


def _starts_token(literal: str) -> str:
    escaped = re.escape(literal)
    return f"{escaped}(?<!{_W}{escaped})"


def _leaf_pattern(query: Query, head: bool) -> str:
    """The regex for one occurrence of a term, phrase or wildcard, spanning whole tokens.

    ``head``: the pattern starts the regex (it must check its own start boundary); else it
    follows a gap (which already ends at a token start).
    """
    if isinstance(query, Wildcard):
        text = query.text
        leading, trailing = text.startswith("*"), text.endswith("*")
        stem = text.strip("*")
        sigil = stem[0] if stem[0] in "#@" else ""
        body = sigil + fold(stem[len(sigil) :])
        if not leading:
            return (_starts_token(body) if head else re.escape(body)) + f"{_W}*"
        tail = f"{_W}*" if trailing else _NOT_W
        return ("" if head else f"{_W}*") + re.escape(body) + tail
    assert isinstance(query, Term | Phrase)
    words, sigils = tokenize(fold(query.text))
    tokens = [(sigils[i] if sigils else "") + word for i, word in enumerate(words)]
    first = _starts_token(tokens[0]) if head else re.escape(tokens[0])
    return first + "".join(_GAP + re.escape(token) for token in tokens[1:]) + _NOT_W


def _leaf_regex(query: Query) -> re.Pattern[str]:
    if isinstance(query, Wildcard) and query.text.startswith("*") and query.text.endswith("*"):
        # Any occurrence of a stem of word characters lies inside a token.
        return re.compile(re.escape(fold(query.text.strip("*"))))
    return re.compile(_leaf_pattern(query, head=True))


def _searcher(regex: re.Pattern[str], fields: tuple[str, ...]) -> _Eval:
    search = regex.search
    if fields == _DEFAULT_FIELDS:
        return lambda view: search(view.title_text) is not None
    return lambda view: any(search(view.field(field)) is not None for field in fields)


# --- compiling a query into a function of a _View -----------------------------------------------


def _compile(query: Query, fields: tuple[str, ...]) -> _Eval:
    if isinstance(query, Term | Phrase | Wildcard):
        return _searcher(_leaf_regex(query), fields)
    if isinstance(query, Raw):
        return _compile_raw(query.text, fields)
    if isinstance(query, Field):
        if query.name in ("title", "text", "author"):
            return _compile(query.child, (query.name,))
        return _compile_meta(query.name, query.child)
    if isinstance(query, Not):
        child = _compile(query.child, fields)
        return lambda view: not child(view)
    if isinstance(query, And):
        children = tuple(_compile(child, fields) for child in query.children)
        return lambda view: all(child(view) for child in children)
    if isinstance(query, Or):
        children = tuple(_compile(child, fields) for child in query.children)
        return lambda view: any(child(view) for child in children)
    return _compile_near(query, fields)


def _compile_near(query: Near, fields: tuple[str, ...]) -> _Eval:
    gap = f"(?:{_GAP}{_W}+){{0,{query.distance}}}{_GAP}"
    forward = re.compile(
        _leaf_pattern(query.left, head=True) + gap + _leaf_pattern(query.right, head=False)
    )
    if query.ordered:
        return _searcher(forward, fields)
    backward = re.compile(
        _leaf_pattern(query.right, head=True) + gap + _leaf_pattern(query.left, head=False)
    )
    first, second = _searcher(forward, fields), _searcher(backward, fields)
    return lambda view: first(view) or second(view)


def _compile_raw(text: str, fields: tuple[str, ...]) -> _Eval:
    check_before, check_after = is_word_char(text[0]), is_word_char(text[-1])

    def raw(view: _View) -> bool:
        for field in fields:
            haystack = view.original(field)
            start = haystack.find(text)
            while start >= 0:
                end = start + len(text)
                if not (check_before and start > 0 and is_word_char(haystack[start - 1])) and not (
                    check_after and end < len(haystack) and is_word_char(haystack[end])
                ):
                    return True
                start = haystack.find(text, start + 1)
        return False

    return raw


def _compile_meta(name: str, value_node: Query) -> _Eval:
    assert isinstance(value_node, Term | Phrase)
    value = value_node.text.strip()
    if name == "site":
        site = value.lower().strip(".")
        dotted = "." + site
        return lambda view: any(
            host == site or host.endswith(dotted)
            for host in (view.host(), view.article_host() if view.doc.article_url else "")
            if host
        )
    if name == "url":
        needle = value.lower()
        return lambda view: (
            needle in (view.doc.url or "").lower()
            or (view.doc.article_url is not None and needle in view.doc.article_url.lower())
        )
    if name == "lang":
        lang = value.lower()
        return lambda view: view.language() == lang
    source = value.casefold()
    return lambda view: view.doc.source.casefold() == source


# --- anchors ------------------------------------------------------------------------------------

_Clauses = tuple[frozenset[str], ...]


def anchor_clauses(query: Query) -> _Clauses:
    """Necessary conditions for ``query`` to match: in every document it matches, each clause
    (a set of folded strings) has at least one member occurring in the folded title, text or
    author. No clauses: nothing is known, the query must be evaluated on every document."""
    if isinstance(query, Term | Phrase):
        words = tokenize(fold(query.text))[0]
        return (frozenset({max(words, key=len)}),) if words else ()
    if isinstance(query, Wildcard):
        return (frozenset({fold(query.text.strip("*").lstrip("#@"))}),)
    if isinstance(query, Field):
        return anchor_clauses(query.child) if query.name in ("title", "text", "author") else ()
    if isinstance(query, And | Near):
        children = query.children if isinstance(query, And) else (query.left, query.right)
        return tuple(dict.fromkeys(c for child in children for c in anchor_clauses(child)))
    if isinstance(query, Or):
        # Each child needs one of its clauses; the union of one clause per child is necessary.
        union: set[str] = set()
        for child in query.children:
            clauses = anchor_clauses(child)
            if not clauses:
                return ()
            union |= min(clauses, key=_cost)
        return (frozenset(union),)
    return ()  # Not, Raw


def _cost(clause: AbstractSet[str]) -> float:
    """Fewer and longer anchors are found in fewer documents."""
    return sum(1.0 / len(anchor) for anchor in clause)


def _scans_author(query: Query) -> bool:
    """Whether some part of ``query`` searches the author (whose anchors must then be scanned)."""
    if isinstance(query, Field):
        return query.name == "author" or _scans_author(query.child)
    if isinstance(query, And | Or):
        return any(_scans_author(child) for child in query.children)
    if isinstance(query, Not):
        return _scans_author(query.child)
    return False


# --- the matcher --------------------------------------------------------------------------------


def _strip_at(name: str) -> str:
    folded = fold(name).strip()
    return folded[1:] if folded.startswith("@") else folded


class Matcher:
    """Finds the names of the brands a document mentions. Build once, call ``match`` many times.

    ``brands`` are (name, query, mute_authors, mute_domains). ``prefilter=False`` evaluates every
    query on every document (slow; for tests that prove the prefilter changes nothing).
    """

    def __init__(
        self,
        brands: Sequence[tuple[str, Query, tuple[str, ...], tuple[str, ...]]],
        *,
        prefilter: bool = True,
    ) -> None:
        self._names = tuple(name for name, _, _, _ in brands)
        self._evals = tuple(_compile(query, _DEFAULT_FIELDS) for _, query, _, _ in brands)
        self._mute_authors = tuple(
            frozenset(_strip_at(author) for author in authors) for _, _, authors, _ in brands
        )
        self._mute_domains = tuple(
            tuple(d for d in (domain.lower().strip().strip(".") for domain in domains) if d)
            for _, _, _, domains in brands
        )
        self._scan_author = any(_scans_author(query) for _, query, _, _ in brands)
        anchor_ids: dict[str, int] = {}
        owners: dict[int, set[int]] = {}
        # Per brand, the clauses other than the one it is indexed under, as anchor id sets.
        checks: list[tuple[frozenset[int], ...]] = []
        always: list[int] = []
        for index, (_, query, _, _) in enumerate(brands):
            clauses = anchor_clauses(query) if prefilter else ()
            if not clauses:
                always.append(index)
                checks.append(())
                continue
            ids = [
                frozenset(anchor_ids.setdefault(a, len(anchor_ids)) for a in clause)
                for clause in sorted(clauses, key=_cost)
            ]
            for anchor_id in ids[0]:
                owners.setdefault(anchor_id, set()).add(index)
            checks.append(tuple(ids[1:]))
        self._always = frozenset(always)
        self._owners = tuple(frozenset(owners.get(i, ())) for i in range(len(anchor_ids)))
        self._checks = tuple(checks)
        self._automaton = (
            ahocorasick_rs.AhoCorasick(anchor_ids, implementation=ahocorasick_rs.Implementation.DFA)
            if anchor_ids
            else None
        )
        self.anchor_count = len(anchor_ids)
        self.screens = (
            self._automaton is not None
            and not always
            and not self._scan_author
            and all(_WORD_CHARS.fullmatch(anchor) for anchor in anchor_ids)
        )
        """Whether ``screen`` can ever answer False (see the module docstring)."""
        self.evaluated = 0
        """How many (document, query) evaluations ``match`` made so far (for benchmarks)."""

    def _candidates(self, doc: Document) -> tuple[_View, frozenset[int] | set[int]]:
        title_text = fold(_clean(doc.title) + _SEPARATOR + _clean(doc.text))
        author = None
        haystack = title_text
        if self._scan_author and doc.author:
            author = fold(_clean(doc.author))
            haystack = title_text + _SEPARATOR + author
        view = _View(doc, title_text, author)
        if self._automaton is None:
            return view, self._always
        hits = self._automaton.find_matches_as_indexes(haystack, overlapping=True)
        if not hits:
            return view, self._always
        found_ids = {hit[0] for hit in hits}
        owners, checks = self._owners, self._checks
        candidates = set(self._always)
        for anchor_id in found_ids:
            for index in owners[anchor_id]:
                if all(not clause.isdisjoint(found_ids) for clause in checks[index]):
                    candidates.add(index)
        return view, candidates

    def screen(self, pieces: str) -> bool:
        """Whether a document may match whose title and text ``pieces`` stands in for (a text
        holding every run of word characters of both): False only when no brand can."""
        if not self.screens:
            return True
        if not pieces.isascii():
            try:
                pieces.encode("latin-1")
            except UnicodeEncodeError:
                pieces = _PUNCTUATION.sub(" ", pieces)
                try:
                    pieces.encode("latin-1")
                except UnicodeEncodeError:
                    return True  # fold may compose or drop across pieces: no promise
        assert self._automaton is not None
        return bool(self._automaton.find_matches_as_indexes(fold(_clean(pieces))))

    def match(self, doc: Document) -> frozenset[str]:
        """Return the names of the brands whose queries match ``doc`` and that do not mute it."""
        view, candidates = self._candidates(doc)
        if not candidates:
            return frozenset()
        self.evaluated += len(candidates)
        names, evals = self._names, self._evals
        return frozenset(
            names[index]
            for index in candidates
            if evals[index](view) and not self._muted(index, view)
        )

    def _muted(self, index: int, view: _View) -> bool:
        authors = self._mute_authors[index]
        if authors and view.doc.author and _strip_at(view.doc.author) in authors:
            return True
        domains = self._mute_domains[index]
        if domains:
            host = view.host()
            return any(host == domain or host.endswith("." + domain) for domain in domains)
        return False
