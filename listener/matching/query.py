"""The brand query language: parse text into a ``Query``, print it back, convert old term lists.

Owns the syntax tree (``Term``, ``Phrase``, ``Wildcard``, ``Raw``, ``Field``, ``And``, ``Or``,
``Not``, ``Near``), ``parse_query``, ``format_query``, ``terms_query`` and ``QuerySyntaxError``.
How a query matches a document is ``matcher``'s business; words are ``tokens``' and folding is
``normalize``'s.

Syntax, by example::

    kryptonite                      a word: matches the whole token "kryptonite", any case,
                                    and also the hashtag "#kryptonite" and the handle "@kryptonite"
    #kryptonitelock  @kryptonite    a hashtag / handle: matches only that hashtag / handle
    "kryptonite lock"               a phrase: these tokens one after the other (punctuation and
                                    line breaks between them do not matter); \\" and \\\\ escape
    e-mail  12:30                   a word with punctuation inside is a phrase of its tokens
    lock*                           a token starting with "lock" (lock, locks, lockpicking)
    *bahn                           a token ending in "bahn" (Deutschebahn, S-Bahn's "bahn")
    *bahn*                          a token containing "bahn" (Bahnchaos, Deutschebahn, bahn);
                                    wildcards need at least 2 characters besides the "*"s
    a b   a AND b                   both (adjacent operands are ANDed)
    a OR b                          either
    NOT a   -a   -"a b"   -(a OR b) not
    a NEAR/3 b                      a and b with at most 3 tokens between them, either order
    a ONEAR/3 b                     a before b, with at most 3 tokens between them
    (a OR b) c                      parentheses group
    title:a  text:"a b"  author:(a OR b*)
                                    search only the title / text / author; without a scope a
                                    query searches title and text (not the author)
    site:example.com                the URL's host is example.com or a subdomain of it
    url:"example.com/news"          the lower-cased URL contains this
    lang:de                         the document language's primary subtag is "de"
    source:heise                    the name of the source the document came from (any case)
    raw:"Apple"  raw:C++            case-sensitive, unfolded, in the original title and text (or
                                    the scope around it); not inside another word where the
                                    value starts or ends with a word character

Keywords are uppercase: AND, OR, NOT, NEAR/n, ONEAR/n; "and", "or", "not" are ordinary words
(quote "AND" to search for the word). Precedence, tightest first: NOT and "-", then NEAR/ONEAR,
then AND (explicit or implicit), then OR: ``a OR b c`` is ``a OR (b AND c)``;
``NOT a b`` is ``(NOT a) AND b``. NEAR/ONEAR operands are terms, phrases or wildcards (scope
the whole: ``title:(a NEAR/2 b)``); NEAR is not chained. A scope applies to the operand right
after the colon (no space): a term, phrase, wildcard or parenthesised group; ``site:``,
``url:``, ``lang:``, ``source:`` and ``raw:`` take one value (a word or a phrase). Field names
are case-insensitive.

Terms and texts are compared after ``normalize.fold``: case, NFKC forms, invisible characters,
German umlauts (Müller = Mueller) and Latin-looking Cyrillic/Greek letters do not matter.

Errors are never silent: ``parse_query`` raises ``QuerySyntaxError`` with the position for
unbalanced parentheses and quotes, dangling operators, empty queries and groups, unknown fields
(with a suggestion), NEAR without a distance, too short wildcard stems, terms without letters or
digits, and queries that could match a document without any of their words (``NOT foo``,
``a OR -b``), since those would match almost everything.

Size: over 500 lines on purpose: the grammar, its tree and its printer must round-trip
(``format_query(parse_query(q))``), so they stay together; matching is ``matcher``'s.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from listener.matching.normalize import fold
from listener.matching.tokens import WORD, tokenize

__all__ = [
    "META_FIELDS",
    "TEXT_FIELDS",
    "And",
    "Field",
    "Near",
    "Not",
    "Or",
    "Phrase",
    "Query",
    "QuerySyntaxError",
    "Raw",
    "Term",
    "Wildcard",
    "format_query",
    "parse_query",
    "terms_query",
]

TEXT_FIELDS: tuple[str, ...] = ("title", "text", "author")
META_FIELDS: tuple[str, ...] = ("site", "url", "lang", "source")
_VALUE_FIELDS = (*META_FIELDS, "raw")
_ALL_FIELDS = (*TEXT_FIELDS, *_VALUE_FIELDS)
MAX_DISTANCE = 1000
_MAX_DEPTH = 64
_MIN_STEM = 2


@dataclass(frozen=True, slots=True)
class Term:
    """A word as written; several tokens ("e-mail") match as a phrase."""

    text: str


@dataclass(frozen=True, slots=True)
class Phrase:
    """A quoted phrase, unescaped."""

    text: str


@dataclass(frozen=True, slots=True)
class Wildcard:
    """A word with "*" at its start, end or both, as written (``lock*``, ``*bahn*``)."""

    text: str


@dataclass(frozen=True, slots=True)
class Raw:
    """``raw:`` text: case-sensitive, unfolded."""

    text: str


@dataclass(frozen=True, slots=True)
class Field:
    """A scope: a text field (title, text, author) over a subquery, or a metadata field (site,
    url, lang, source) over its value, a ``Term`` or ``Phrase``."""

    name: str
    child: Query


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Query


@dataclass(frozen=True, slots=True)
class Near:
    """``left NEAR/distance right``; ``ordered`` for ONEAR. Operands: Term, Phrase, Wildcard."""

    left: Query
    right: Query
    distance: int
    ordered: bool = False


Query: TypeAlias = Term | Phrase | Wildcard | Raw | Field | And | Or | Not | Near


class QuerySyntaxError(ValueError):
    """A query that cannot be parsed; ``position`` is the 0-based index the problem is at."""

    def __init__(self, message: str, position: int, query: str) -> None:
        super().__init__(f"{message} at column {position + 1}")
        self.message = message
        self.position = position
        self.query = query

    def __reduce__(self) -> tuple[type[QuerySyntaxError], tuple[str, int, str]]:
        return (type(self), (self.message, self.position, self.query))

    def caret(self) -> str:
        """The query, and under it a caret at the position."""
        return f"{self.query}\n{' ' * self.position}^"


# --- lexer -------------------------------------------------------------------------------------

_SPECIAL = frozenset('()"')
_NEAR = re.compile(r"(O?NEAR)(?:/(.*))?")
_DIGITS = re.compile(r"[0-9]+")
_FIELD_NAME = re.compile(r"[A-Za-z]+")
_STEM = re.compile(f"[{WORD}]+")
_LANG = re.compile(r"[a-z]{2,8}")
_SITE = re.compile(r"[^\s/:?#@]+")


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # ( ) word phrase field - AND OR NOT NEAR value end
    pos: int
    text: str = ""
    number: int = 0


def _lex(query: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    i, n = 0, len(query)
    while i < n:
        char = query[i]
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(_Tok(char, i))
            i += 1
        elif char == '"':
            text, end = _read_phrase(query, i)
            tokens.append(_Tok("phrase", i, text))
            i = end
        elif char == "-":
            if i + 1 >= n or query[i + 1].isspace() or query[i + 1] == ")":
                raise QuerySyntaxError("expected term after '-'", i + 1, query)
            tokens.append(_Tok("-", i))
            i += 1
        else:
            start = i
            while i < n and not query[i].isspace() and query[i] not in _SPECIAL:
                i += 1
            word = query[start:i]
            name, colon, _ = word.partition(":")
            if colon and _FIELD_NAME.fullmatch(name):
                i = _lex_field(query, tokens, start, name.lower(), start + len(name) + 1)
            elif word in ("AND", "OR", "NOT"):
                tokens.append(_Tok(word, start))
            elif near := _NEAR.fullmatch(word):
                if not _DIGITS.fullmatch(near.group(2) or ""):
                    raise QuerySyntaxError(
                        f"{near.group(1)} needs a distance, like {near.group(1)}/3", start, query
                    )
                distance = int(near.group(2))
                if distance > MAX_DISTANCE:
                    raise QuerySyntaxError(
                        f"{near.group(1)} distance must be at most {MAX_DISTANCE}", start, query
                    )
                tokens.append(_Tok("NEAR", start, near.group(1), distance))
            else:
                tokens.append(_Tok("word", start, word))
    tokens.append(_Tok("end", n))
    return tokens


def _read_phrase(query: str, start: int) -> tuple[str, int]:
    """Read the phrase whose quote is at ``start``; return its text and the index after it."""
    chars: list[str] = []
    i = start + 1
    while i < len(query):
        char = query[i]
        if char == "\\" and i + 1 < len(query):
            chars.append(query[i + 1])
            i += 2
        elif char == '"':
            return "".join(chars), i + 1
        else:
            chars.append(char)
            i += 1
    raise QuerySyntaxError("unbalanced quote: missing '\"'", start, query)


def _lex_field(query: str, tokens: list[_Tok], start: int, name: str, after: int) -> int:
    """Lex ``name:`` at ``start``; values of value fields are read here. Return where to go on."""
    if name not in _ALL_FIELDS:
        close = difflib.get_close_matches(name, _ALL_FIELDS, n=1)
        hint = (
            f", did you mean '{close[0]}'"
            if close
            else f" (fields are {', '.join(_ALL_FIELDS)}; quote a term that contains ':')"
        )
        raise QuerySyntaxError(f"unknown field '{name}'{hint}", start, query)
    tokens.append(_Tok("field", start, name))
    if after >= len(query) or query[after].isspace() or query[after] == ")":
        raise QuerySyntaxError(f"expected term after '{name}:'", after, query)
    if name not in _VALUE_FIELDS or query[after] in '("':
        return after
    i = after
    while i < len(query) and not query[i].isspace() and query[i] not in _SPECIAL:
        i += 1
    tokens.append(_Tok("value", after, query[after:i]))
    return i


# --- parser ------------------------------------------------------------------------------------

_OPERAND_START = frozenset({"(", "word", "phrase", "field", "-", "NOT"})
_SIMPLE = (Term, Phrase, Wildcard)


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _lex(query)
        self.index = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.tokens[self.index]

    def take(self) -> _Tok:
        tok = self.tokens[self.index]
        self.index += 1
        return tok

    def fail(self, message: str, position: int) -> QuerySyntaxError:
        return QuerySyntaxError(message, position, self.query)

    def parse(self) -> Query:
        if self.peek().kind == "end":
            raise self.fail("empty query", 0)
        node = self.parse_or()
        tok = self.peek()
        if tok.kind == ")":
            raise self.fail("unbalanced parenthesis: ')' without '('", tok.pos)
        if tok.kind != "end":  # pragma: no cover - every other token starts or joins an operand
            raise self.fail(f"unexpected '{tok.kind}'", tok.pos)
        return node

    def expect_operand(self, after: str) -> None:
        tok = self.peek()
        if tok.kind not in _OPERAND_START:
            raise self.fail(f"expected term after {after}", tok.pos)

    def parse_or(self) -> Query:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.fail("query nested too deeply", self.peek().pos)
        children = [self.parse_and()]
        while self.peek().kind == "OR":
            self.take()
            self.expect_operand("OR")
            children.append(self.parse_and())
        self.depth -= 1
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self) -> Query:
        tok = self.peek()
        if tok.kind in ("AND", "OR", "NEAR"):
            raise self.fail(f"expected term before {_keyword(tok)}", tok.pos)
        if tok.kind == ")":
            raise self.fail("unbalanced parenthesis: ')' without '('", tok.pos)
        children = [self.parse_near()]
        while True:
            tok = self.peek()
            if tok.kind == "AND":
                self.take()
                self.expect_operand("AND")
            elif tok.kind not in _OPERAND_START:
                break
            children.append(self.parse_near())
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_near(self) -> Query:
        start = self.peek().pos
        left = self.parse_unary()
        tok = self.peek()
        if tok.kind != "NEAR":
            return left
        self.take()
        if not isinstance(left, _SIMPLE):
            raise self.fail(f"{tok.text} operands must be terms, phrases or wildcards", start)
        self.expect_operand(_keyword(tok))
        right_start = self.peek().pos
        right = self.parse_unary()
        if not isinstance(right, _SIMPLE):
            raise self.fail(f"{tok.text} operands must be terms, phrases or wildcards", right_start)
        if self.peek().kind == "NEAR":
            raise self.fail(f"{tok.text} cannot be chained; join two with AND", self.peek().pos)
        return Near(left, right, tok.number, tok.text == "ONEAR")

    def parse_unary(self) -> Query:
        tok = self.peek()
        if tok.kind not in ("NOT", "-"):
            return self.parse_primary()
        self.take()
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.fail("query nested too deeply", tok.pos)
        self.expect_operand("NOT" if tok.kind == "NOT" else "'-'")
        child = self.parse_unary()
        self.depth -= 1
        return Not(child)

    def parse_primary(self) -> Query:
        tok = self.take()
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.fail("query nested too deeply", tok.pos)
        node = self.primary(tok)
        self.depth -= 1
        return node

    def primary(self, tok: _Tok) -> Query:
        if tok.kind == "(":
            if self.peek().kind == ")":
                raise self.fail("empty parentheses", tok.pos)
            self.expect_operand("'('")
            node = self.parse_or()
            if self.peek().kind != ")":
                raise self.fail("unbalanced parenthesis: missing ')'", tok.pos)
            self.take()
            return node
        if tok.kind == "phrase":
            return self.phrase(tok.text, tok.pos)
        if tok.kind == "word":
            return self.word(tok.text, tok.pos)
        if tok.kind == "field":
            return self.field(tok)
        raise self.fail("expected term", tok.pos)  # pragma: no cover - callers check first

    def phrase(self, text: str, pos: int) -> Phrase:
        if not tokenize(fold(text))[0]:
            raise self.fail("phrase has no letters or digits", pos)
        return Phrase(text)

    def word(self, text: str, pos: int) -> Term | Wildcard:
        if "*" not in text:
            if not tokenize(fold(text))[0]:
                raise self.fail(f"term '{text}' has no letters or digits", pos)
            return Term(text)
        leading, trailing = text.startswith("*"), text.endswith("*")
        stem = text[int(leading) : len(text) - int(trailing)]
        if "*" in stem:
            raise self.fail("'*' is only allowed at the start or end of a term", pos)
        bare = stem[1:] if stem[:1] in ("#", "@") and not leading else stem
        if len(bare) < _MIN_STEM:
            raise self.fail(f"wildcard needs at least {_MIN_STEM} characters besides '*'", pos)
        if not _STEM.fullmatch(fold(bare)):
            raise self.fail("a wildcard may only contain letters and digits besides '*'", pos)
        return Wildcard(text)

    def field(self, tok: _Tok) -> Query:
        name = tok.text
        nxt = self.peek()
        if name in _VALUE_FIELDS:
            if nxt.kind not in ("value", "phrase"):
                raise self.fail(f"'{name}:' takes one value, a word or a phrase", nxt.pos)
            self.take()
            value = nxt.text
            if not value.strip():
                raise self.fail(f"empty '{name}:' value", nxt.pos)
            if name == "raw":
                return Raw(value)
            self.check_value(name, value, nxt.pos)
            return Field(name, Phrase(value) if nxt.kind == "phrase" else Term(value))
        if nxt.kind not in ("(", "word", "phrase", "field"):
            raise self.fail(f"expected term after '{name}:'", nxt.pos)
        return Field(name, self.parse_primary())

    def check_value(self, name: str, value: str, pos: int) -> None:
        if name == "lang" and not _LANG.fullmatch(value.lower()):
            raise self.fail("'lang:' takes a language code like 'de' or 'en'", pos)
        if name == "site" and not _SITE.fullmatch(value.strip(".")):
            raise self.fail("'site:' takes a host name like 'example.com'", pos)


def _keyword(tok: _Tok) -> str:
    return f"{tok.text}/{tok.number}" if tok.kind == "NEAR" else tok.kind


def _matches_empty(query: Query) -> bool:
    """Whether ``query`` matches a document with no text, URL, language or source at all."""
    if isinstance(query, Not):
        return not _matches_empty(query.child)
    if isinstance(query, And):
        return all(_matches_empty(child) for child in query.children)
    if isinstance(query, Or):
        return any(_matches_empty(child) for child in query.children)
    if isinstance(query, Field) and query.name in TEXT_FIELDS:
        return _matches_empty(query.child)
    return False


def parse_query(text: str) -> Query:
    """Parse ``text``; raise ``QuerySyntaxError`` (and nothing else) when it is not a query."""
    query = _Parser(text).parse()
    if _matches_empty(query):
        raise QuerySyntaxError(
            "the query only excludes, so it would match almost everything; add a term to match",
            0,
            text,
        )
    return query


# --- printing ----------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _group(query: Query, wrap: tuple[type, ...]) -> str:
    text = format_query(query)
    return f"({text})" if isinstance(query, wrap) else text


def format_query(query: Query) -> str:
    """The canonical text of ``query``: ``parse_query(format_query(q)) == q``."""
    if isinstance(query, Term | Wildcard):
        return query.text
    if isinstance(query, Phrase):
        return _quote(query.text)
    if isinstance(query, Raw):
        return "raw:" + _quote(query.text)
    if isinstance(query, Field):
        return f"{query.name}:" + _group(query.child, (And, Or, Not, Near))
    if isinstance(query, Not):
        return "NOT " + _group(query.child, (And, Or, Near))
    if isinstance(query, And):
        return " AND ".join(_group(child, (And, Or)) for child in query.children)
    if isinstance(query, Or):
        return " OR ".join(_group(child, (Or, And)) for child in query.children)
    keyword = "ONEAR" if query.ordered else "NEAR"
    return f"{format_query(query.left)} {keyword}/{query.distance} {format_query(query.right)}"


def terms_query(terms: Sequence[str], exclude: Sequence[str]) -> str:
    """The query text for a brand configured with ``terms`` and ``exclude`` lists.

    Every term becomes a phrase, so any characters are safe:
    ``("Kryptonite" OR "#kryptonitelock") NOT ("Superman")``.
    """
    text = "(" + " OR ".join(_quote(term) for term in terms) + ")" if terms else ""
    if exclude:
        text += " NOT (" + " OR ".join(_quote(term) for term in exclude) + ")"
    return text
