"""Tests for listener.matching.query: parsing, errors with positions, printing, term lists."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from listener.matching.query import (
    And,
    Field,
    Near,
    Not,
    Or,
    Phrase,
    Query,
    QuerySyntaxError,
    Raw,
    Term,
    Wildcard,
    format_query,
    parse_query,
    terms_query,
)

T, P, W = Term, Phrase, Wildcard


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Kryptonite", T("Kryptonite")),
        ('"Kryptonite lock"', P("Kryptonite lock")),
        ('"say \\"hi\\" \\\\ bye"', P('say "hi" \\ bye')),
        ("a b", And((T("a"), T("b")))),
        ("a AND b", And((T("a"), T("b")))),
        ("a OR b", Or((T("a"), T("b")))),
        ("a or b", And((T("a"), T("or"), T("b")))),  # lowercase keywords are words
        ("a OR b c", Or((T("a"), And((T("b"), T("c")))))),
        ("(a OR b) c", And((Or((T("a"), T("b"))), T("c")))),
        ("a NOT b", And((T("a"), Not(T("b"))))),
        ("a -b", And((T("a"), Not(T("b"))))),
        ('a -"b c"', And((T("a"), Not(P("b c"))))),
        ("a -(b OR c)", And((T("a"), Not(Or((T("b"), T("c"))))))),
        ("NOT a b", And((Not(T("a")), T("b")))),
        ("a NOT NOT b", And((T("a"), Not(Not(T("b")))))),
        ("e-mail", T("e-mail")),
        ("lock*", W("lock*")),
        ("*bahn*", W("*bahn*")),
        ("*bahn", W("*bahn")),
        ("#kryptonitelock", T("#kryptonitelock")),
        ("@kryptonite", T("@kryptonite")),
        ("#lock*", W("#lock*")),
        ("a NEAR/3 b", Near(T("a"), T("b"), 3)),
        ('"a b" ONEAR/0 cd*', Near(P("a b"), W("cd*"), 0, ordered=True)),
        ("a NEAR/2 b c", And((Near(T("a"), T("b"), 2), T("c")))),
        ("x OR a NEAR/2 b", Or((T("x"), Near(T("a"), T("b"), 2)))),
        ("title:a", Field("title", T("a"))),
        ("TITLE:a", Field("title", T("a"))),
        ('text:"a b"', Field("text", P("a b"))),
        ("author:(a OR bc*)", Field("author", Or((T("a"), W("bc*"))))),
        ("title:(a NEAR/2 b)", Field("title", Near(T("a"), T("b"), 2))),
        ("a site:example.com", And((T("a"), Field("site", T("example.com"))))),
        ('a url:"example.com/news"', And((T("a"), Field("url", P("example.com/news"))))),
        ("a url:https://x.de/a?b=c", And((T("a"), Field("url", T("https://x.de/a?b=c"))))),
        ("a lang:de", And((T("a"), Field("lang", T("de"))))),
        ("a source:heise", And((T("a"), Field("source", T("heise"))))),
        ("a -lang:de", And((T("a"), Not(Field("lang", T("de")))))),
        ('raw:"Apple"', Raw("Apple")),
        ("raw:C++", Raw("C++")),
        ('title:raw:"X"', Field("title", Raw("X"))),
        ("12:30", T("12:30")),
        ("  a\n\tb  ", And((T("a"), T("b")))),
        ('"AND" OR "near"', Or((P("AND"), P("near")))),
    ],
)
def test_parse(text: str, expected: Query) -> None:
    assert parse_query(text) == expected


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("", "empty query", 0),
        ("   ", "empty query", 0),
        ("Kryptonite AND NOT", "expected term after NOT", 18),
        ("a OR", "expected term after OR", 4),
        ("a AND", "expected term after AND", 5),
        ("a AND OR b", "expected term after AND", 6),
        ("OR a", "expected term before OR", 0),
        ("a -", "expected term after '-'", 3),
        ("a - b", "expected term after '-'", 3),
        ("(a", "unbalanced parenthesis: missing ')'", 0),
        ("a)", "unbalanced parenthesis: ')' without '('", 1),
        ("a (b OR (c)", "unbalanced parenthesis: missing ')'", 2),
        ("()", "empty parentheses", 0),
        ('a "b c', "unbalanced quote: missing '\"'", 2),
        ('"a\\"', "unbalanced quote: missing '\"'", 0),
        ("titel:x", "unknown field 'titel', did you mean 'title'", 0),
        ("a Autor:x", "unknown field 'autor', did you mean 'author'", 2),
        ("title: x", "expected term after 'title:'", 6),
        ("title:", "expected term after 'title:'", 6),
        ("title:-x", "expected term after 'title:'", 6),
        ("a lang:(de OR en)", "'lang:' takes one value, a word or a phrase", 7),
        ("a lang:deutsch1", "'lang:' takes a language code like 'de' or 'en'", 7),
        ("a site:http://x.de", "'site:' takes a host name like 'example.com'", 7),
        ("a NEAR b", "NEAR needs a distance, like NEAR/3", 2),
        ("a NEAR/x b", "NEAR needs a distance, like NEAR/3", 2),
        ("a ONEAR/ b", "ONEAR needs a distance, like ONEAR/3", 2),
        ("a NEAR/5000 b", "NEAR distance must be at most 1000", 2),
        ("a NEAR/3", "expected term after NEAR/3", 8),
        ("NEAR/3 a", "expected term before NEAR/3", 0),
        ("(a OR b) NEAR/3 c", "NEAR operands must be terms, phrases or wildcards", 0),
        ("a NEAR/3 -b", "NEAR operands must be terms, phrases or wildcards", 9),
        ("a NEAR/3 b NEAR/3 c", "NEAR cannot be chained; join two with AND", 11),
        ("l*", "wildcard needs at least 2 characters besides '*'", 0),
        ("*a*", "wildcard needs at least 2 characters besides '*'", 0),
        ("lo*ck", "'*' is only allowed at the start or end of a term", 0),
        ("**bahn", "'*' is only allowed at the start or end of a term", 0),
        ("lo-ck*", "a wildcard may only contain letters and digits besides '*'", 0),
        ("a +++", "term '+++' has no letters or digits", 2),
        ('a "!!"', "phrase has no letters or digits", 2),
        ("NOT foo", "the query only excludes", 0),
        ("-foo -bar", "the query only excludes", 0),
        ("a OR -b", "the query only excludes", 0),
        ("title:(NOT a)", "the query only excludes", 0),
        ("(" * 80 + "a" + ")" * 80, "query nested too deeply", 32),
    ],
)
def test_syntax_errors(text: str, message: str, position: int) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(text)
    error = caught.value
    assert error.message.startswith(message)
    assert error.position == position
    assert error.query == text
    assert str(error) == f"{error.message} at column {position + 1}"


def test_caret_and_pickling() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query("Kryptonite AND NOT")
    assert str(caught.value) == "expected term after NOT at column 19"
    assert caught.value.caret() == "Kryptonite AND NOT\n                  ^"
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.message, copy.position, copy.query) == ("expected term after NOT", 18, copy.query)


def test_double_negation_is_positive() -> None:
    assert parse_query("NOT NOT a") == Not(Not(T("a")))


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("a b OR c", "(a AND b) OR c"),
        ("a -b", "a AND NOT b"),
        ("a -(b c)", "a AND NOT (b AND c)"),
        ("a (b OR c)", "a AND (b OR c)"),
        ("title:(a b)", "title:(a AND b)"),
        ('"say \\"hi\\""', '"say \\"hi\\""'),
        ("raw:C++", 'raw:"C++"'),
        ("a ONEAR/2 bc*", "a ONEAR/2 bc*"),
        ("a -title:(x NEAR/1 y)", "a AND NOT title:(x NEAR/1 y)"),
    ],
)
def test_format(text: str, canonical: str) -> None:
    assert format_query(parse_query(text)) == canonical
    assert parse_query(canonical) == parse_query(text)


def test_terms_query() -> None:
    text = terms_query(["Kryptonite", "Kryptonit", "#kryptonitelock"], ["Superman"])
    assert text == '("Kryptonite" OR "Kryptonit" OR "#kryptonitelock") NOT ("Superman")'
    assert parse_query(text) == And(
        (Or((P("Kryptonite"), P("Kryptonit"), P("#kryptonitelock"))), Not(P("Superman")))
    )
    odd = terms_query(['say "hi"', "a\\b", "NOT", "(x", "title:y"], [])
    assert parse_query(odd) == Or((P('say "hi"'), P("a\\b"), P("NOT"), P("(x"), P("title:y")))
    assert parse_query(terms_query(["C++"], [])) == P("C++")


# --- properties --------------------------------------------------------------------------------

_pieces = st.sampled_from(
    [
        "a", "b", "Müller", "#tag", "@x", "lock*", "*bahn*", "*bahn", "AND", "OR", "NOT", "-",
        "(", ")", '"', '"x y"', "NEAR/2", "ONEAR/1", "NEAR", "title:", "site:", "lang:", "raw:",
        "de", "x.com", ":", "*", "\\", " ", " ", " ", "\u200b", "Кrypto", "titel:", "e-mail",
    ]
)  # fmt: skip
_query_like = st.lists(_pieces, max_size=14).map("".join)


def _check_parse(text: str) -> None:
    try:
        query = parse_query(text)
    except QuerySyntaxError as error:
        assert 0 <= error.position <= len(text)
        assert error.query == text
        return
    assert parse_query(format_query(query)) == query


@given(st.text())
def test_arbitrary_text_parses_or_raises_syntax_error(text: str) -> None:
    _check_parse(text)


@given(_query_like)
def test_query_like_text_parses_or_raises_syntax_error(text: str) -> None:
    _check_parse(text)


_words = st.sampled_from(["kryptonite", "Bahn", "Müller", "#tag", "@handle", "e-mail", "x1"])
_leaves = st.one_of(
    _words.map(Term),
    st.text(min_size=1, max_size=8).filter(lambda t: any(c.isalnum() for c in t)).map(Phrase),
    st.sampled_from(["lock*", "*bahn*", "*bahn", "#ab*"]).map(Wildcard),
    st.text(min_size=1, max_size=5).filter(str.strip).map(Raw),
)


def _tree(children: st.SearchStrategy[Query]) -> st.SearchStrategy[Query]:
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda c: And(tuple(c))),
        st.lists(children, min_size=2, max_size=3).map(lambda c: Or(tuple(c))),
        children.map(Not),
        st.tuples(st.sampled_from(["title", "text", "author"]), children).map(lambda t: Field(*t)),
    )


_queries = st.recursive(_leaves, _tree, max_leaves=8)


def _flat(query: Query) -> bool:
    """Whether the tree is one the parser can produce (no And directly in And, Or in Or)."""
    if isinstance(query, And | Or):
        return all(not isinstance(c, type(query)) and _flat(c) for c in query.children)
    if isinstance(query, Not | Field):
        return _flat(query.child)
    return True


@given(_queries)
def test_format_round_trips_generated_trees(query: Query) -> None:
    try:
        parsed = parse_query(format_query(query))
    except QuerySyntaxError as error:
        assert "only excludes" in error.message or "no letters or digits" in error.message
        return
    if _flat(query):
        assert parsed == query
    assert format_query(parsed) == format_query(query)
