"""Tests for listener.matching.dedup."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from listener.matching import canonical_url, content_hash, dedup_key


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Example.COM:80/a?utm_source=x&id=3#frag", "http://example.com/a?id=3"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
        ("http://example.com:8080", "http://example.com:8080/"),
        ("http://example.com:/a", "http://example.com/a"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com?q=1", "https://example.com/?q=1"),
        # remaining parameters keep their order and spelling
        (
            "https://ex.com/p?b=2&utm_medium=rss&a=1&fbclid=XYZ&c=&utm_campaign=z",
            "https://ex.com/p?b=2&a=1&c=",
        ),
        ("https://ex.com/p?z=1&y=2&x=3", "https://ex.com/p?z=1&y=2&x=3"),
        ("https://ex.com/p?utm_source=a&utm_medium=b", "https://ex.com/p"),
        ("https://ex.com/p?UTM_Source=a&Id=1", "https://ex.com/p?Id=1"),
        ("https://ex.com/p?a=1&&b=2&", "https://ex.com/p?a=1&b=2"),
        (
            "https://ex.com/?gclid=1&dclid=2&gbraid=3&wbraid=4&msclkid=5&mc_cid=6&mc_eid=7"
            "&igshid=8&yclid=9&_hsenc=10&_hsmi=11&mkt_tok=12&ref_src=13&spm=14&at_medium=15"
            "&at_campaign=16&keep=yes",
            "https://ex.com/?keep=yes",
        ),
        ("https://ex.com/?utm=1&utmost=2&spmx=3", "https://ex.com/?utm=1&utmost=2&spmx=3"),
        # percent-encoding, path case and userinfo are left as they are
        ("https://Ex.com/A%2Fb/%7Euser?q=a%20b", "https://ex.com/A%2Fb/%7Euser?q=a%20b"),
        ("https://User:PW@Ex.COM:443/x", "https://User:PW@ex.com/x"),
        ("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x"),
        ("http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
        ("https://ex.com/#", "https://ex.com/"),
        ("/relative/path?utm_source=x&a=1", "/relative/path?a=1"),
        ("http://[::1", "http://[::1"),  # unparsable: kept as it is
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


_hosts = st.from_regex(r"[A-Za-z0-9]{1,10}(\.[A-Za-z]{2,5}){1,2}", fullmatch=True)
_params = st.from_regex(
    r"(utm_[a-z]{1,6}|fbclid|gclid|[A-Za-z_%0-9]{0,6})(=[^&#?]{0,6})?", fullmatch=True
)
_urls = st.builds(
    lambda scheme, host, port, path, params, frag: (
        f"{scheme}://{host}{port}{path}" + ("?" + "&".join(params) if params else "") + frag
    ),
    st.sampled_from(["http", "HTTPS", "Http", "ftp"]),
    _hosts,
    st.sampled_from(["", ":80", ":443", ":8080", ":"]),
    st.from_regex(r"(/[A-Za-z0-9%._~-]{0,8}){0,3}", fullmatch=True),
    st.lists(_params, max_size=5),
    st.sampled_from(["", "#", "#frag", "#a?b=c"]),
)


@given(_urls)
def test_canonical_url_is_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once
    assert "#" not in once
    assert not re.search(r"[?&](utm_[^&=]*|fbclid|gclid)(=|&|$)", once)


@given(st.text())
def test_canonical_url_is_idempotent_on_any_text(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


def test_dedup_key_same_item_with_and_without_tracking() -> None:
    plain = dedup_key(source="a", guid="1", url="https://ex.com/post?id=3")
    tracked = dedup_key(
        source="b",
        guid=None,
        url="HTTPS://EX.com:443/post?utm_source=feed&id=3&fbclid=abc#comments",
    )
    assert plain == tracked
    assert plain.startswith("u:")
    assert len(plain) == 2 + 40
    assert re.fullmatch(r"u:[0-9a-f]{40}", plain)


def test_comments_with_their_own_guids_are_distinct_even_when_links_differ_by_fragment() -> None:
    post = "https://blog.example/kryptonite-lock"
    comments = {
        dedup_key(source="c", guid=f"https://blog.example/?p=7#c{n}", url=f"{post}#comment-{n}")
        for n in (1, 2, 3)
    }
    assert len(comments) == 3
    assert dedup_key(source="c", guid=None, url=f"{post}#comment-1") == dedup_key(
        source="d", guid=None, url=post
    )  # without a guid the fragment is only a place on the page
    # the same comment reached through another feed is still one mention
    assert dedup_key(source="c", guid="x", url=f"{post}#comment-1") == dedup_key(
        source="d", guid="y", url=f"{post}?utm_source=rss#comment-1"
    )


def test_description_only_items_are_keyed_by_their_text() -> None:
    one = dedup_key(source="s", guid=None, url=None, title="", text="My Kryptonite lock was cut")
    assert re.fullmatch(r"c:[0-9a-f]{40}", one)
    assert one == dedup_key(source="s", guid=None, url=None, text="my  kryptonite LOCK was cut")
    assert one != dedup_key(source="s", guid=None, url=None, text="My Kryptonite lock held")
    assert one != dedup_key(source="t", guid=None, url=None, text="My Kryptonite lock was cut")


def test_dedup_key_differs_for_different_urls() -> None:
    assert dedup_key(source="a", guid=None, url="https://ex.com/?id=3") != dedup_key(
        source="a", guid=None, url="https://ex.com/?id=4"
    )


def test_dedup_key_guid_is_scoped_per_source() -> None:
    one = dedup_key(source="feed-1", guid="42", url=None)
    assert one == dedup_key(source="feed-1", guid="42", url="")
    assert one != dedup_key(source="feed-2", guid="42", url=None)
    assert one != dedup_key(source="feed-1", guid="43", url=None)
    assert re.fullmatch(r"g:[0-9a-f]{40}", one)


def test_dedup_key_source_and_guid_do_not_run_together() -> None:
    assert dedup_key(source="ab", guid="c", url=None) != dedup_key(source="a", guid="bc", url=None)


def test_dedup_key_falls_back_to_normalised_title() -> None:
    key = dedup_key(source="s", guid=None, url=None, title="Kryptonite\u200b LOCK")
    assert key == dedup_key(source="s", guid="", url="  ", title="kryptonite lock")
    assert key != dedup_key(source="t", guid=None, url=None, title="kryptonite lock")
    assert re.fullmatch(r"t:[0-9a-f]{40}", key)


def test_content_hash() -> None:
    base = content_hash("title", "text", "me")
    assert re.fullmatch(r"[0-9a-f]{32}", base)
    assert base == content_hash("title", "text", "me")
    assert base != content_hash("title!", "text", "me")
    assert base != content_hash("title", "text!", "me")
    assert base != content_hash("title", "text", "you")
    assert base != content_hash("title", "text", None)
    assert content_hash("ti", "tletext", None) != content_hash("title", "text", None)
    assert content_hash("t", "x", None) == content_hash("t", "x", "")
