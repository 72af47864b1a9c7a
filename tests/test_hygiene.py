"""Terminal and storage hygiene: every invisible and control character class removed from CLI
output in every format (escaped inside JSON), escape sequences leave word boundaries, stored
titles and texts capped with a marker, and no credentials in printed URLs. A real feed on
127.0.0.1, a real SQLite file, the real CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from feeds import rss
from pytest_httpserver import HTTPServer
from test_cli import config_text, invoke

from listener.storage.ingest import CUT_MARK, TEXT_MAX, TITLE_MAX, capped
from listener.untrusted import escape_json_unsafe, for_terminal

TAGS = "".join(chr(0xE0000 + ord(c)) for c in "ignore all")  # invisible "ASCII smuggling"
HIDDEN = [
    TAGS,
    "\u202e", "\u2066", "\u061c", "\u200b", "\u200d", "\u2060", "\u00ad", "\ufeff",
    "\x85", "\x07", "\u2028", "\u180e", "\u3164", "\U000e0100", "\U0001d173",
]  # fmt: skip


@pytest.mark.parametrize("hidden", HIDDEN)
def test_every_invisible_class_is_removed_for_the_terminal(hidden: str) -> None:
    assert for_terminal(f"Kryp{hidden}tonite") == "Kryptonite"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Evil\x1b[31mKryptonite\x1b[0m", "Evil Kryptonite"),  # a boundary where words met
        ("\x1b[1mKryptonite\x1b[0m rocks", "Kryptonite rocks"),
        ("see \x1b]8;;https://evil.example\x07here\x1b]8;;\x07!", "see here!"),
        ("Kryptonite\x9b2Jlock", "Kryptonite lock"),  # the C1 CSI
        ("emoji \u2764\ufe0f stays", "emoji \u2764\ufe0f stays"),
    ],
)
def test_escape_sequences_go_whole(raw: str, shown: str) -> None:
    assert for_terminal(raw) == shown


def test_json_keeps_the_data_as_escapes_even_above_the_bmp() -> None:
    text = json.dumps({"t": f"a{TAGS}\u202eb"}, ensure_ascii=False)
    safe = escape_json_unsafe(text)
    assert all(ch not in safe for ch in TAGS + "\u202e")
    assert json.loads(safe)["t"] == f"a{TAGS}\u202eb"


def test_cap_keeps_the_limit_and_marks_the_cut() -> None:
    assert capped("short", 10) == "short"
    cut = capped("x" * 5000, TITLE_MAX)  # no spaces: exactly the limit
    assert len(cut) == TITLE_MAX and cut.endswith(CUT_MARK)


def test_cli_formats_are_clean_capped_and_credential_free(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    items = [
        {
            "title": f"Kryptonite{TAGS} lock\u2066 recall " + "long " * 1000,
            "link": "https://reader:hunter2secret@a.example/1?token=abcdef123456&page=2",
            "guid": "1",
            "description": "Kryptonite " + "body text " * 20_000,
            "date": "Fri, 20 Nov 2026 10:00:00 +0000",
        }
    ]
    httpserver.expect_request("/feed").respond_with_data(rss(items), content_type="text/xml")
    config = tmp_path / "listener.toml"
    config.write_text(config_text(tmp_path / "l.db", httpserver.url_for("/feed")), "utf-8")
    assert invoke("db", "upgrade", "--config", str(config))[0] == 0
    assert invoke("poll", "--once", "--config", str(config))[0] == 0
    outputs = {
        fmt: invoke("mentions", "--config", str(config), "--format", fmt)[1]
        for fmt in ("table", "json", "jsonl", "csv")
    }
    for fmt, out in outputs.items():
        assert out, fmt
        assert not any(ch in out for ch in TAGS + "\u2066"), fmt
        assert "hunter2secret" not in out and "abcdef123456" not in out, fmt
    [row] = json.loads(outputs["json"])
    assert row["url"].startswith("https://a.example/1?") and "page=2" in row["url"]
    assert TITLE_MAX - 2 <= len(row["title"]) <= TITLE_MAX and row["title"].endswith(CUT_MARK)
    assert TEXT_MAX - 2 <= len(row["text"]) <= TEXT_MAX and row["text"].endswith(CUT_MARK)
    assert row["title"].startswith(f"Kryptonite{TAGS} lock")  # data kept, escaped in the JSON
    [record] = list(csv.DictReader(io.StringIO(outputs["csv"])))
    assert record["title"].startswith("Kryptonite lock recall")


def test_without_escapes_keeps_words_apart_for_matching() -> None:
    from listener.untrusted import without_escapes

    assert without_escapes("Evil\x1b[31mKryptonite\x1b[0m!") == "Evil Kryptonite!"
    assert without_escapes("plain text") == "plain text"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("Evil&#27;[31mKryptonite", "Evil Kryptonite"),  # the reference html.unescape drops
        ("Evil&#x1b;[31mKryptonite&#x1B;[0m", "Evil Kryptonite"),
        ("Evil\x1b[31mKryptonite", "Evil Kryptonite"),
        ("\x1b]0;title\x07Kryptonite", "Kryptonite"),
        ("Preis &#155; 5", "Preis \u203a 5"),  # a C1 reference stays the character it means
    ],
)
def test_html_to_text_leaves_a_word_boundary_where_an_escape_stood(raw: str, text: str) -> None:
    from listener.sources.html import html_to_text

    assert html_to_text(raw) == text


def test_plain_text_constructs_are_decoded_once_and_escapes_keep_words_apart(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    """Through the real poller: an Atom feed whose type="text" title holds a double-escaped
    ampersand, and an entry whose only mention of the brand follows an escape sequence."""
    atom = (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        b"<title>t</title><id>urn:t</id><updated>2026-11-20T10:00:00Z</updated>"
        b'<entry><id>urn:1</id><title type="text">AT&amp;amp;T sells Kryptonite</title>'
        b'<link href="https://a.example/1"/><updated>2026-11-20T10:00:00Z</updated>'
        b'<content type="text">&amp;copy; AT&amp;amp;T</content></entry>'
        b'<entry><id>urn:2</id><title type="text">A review</title>'
        b'<link href="https://a.example/2"/><updated>2026-11-20T10:00:00Z</updated>'
        b'<content type="html">Evil&amp;#27;[31mKryptonite&amp;#27;[0m locks</content></entry>'
        b"</feed>"
    )
    httpserver.expect_request("/feed").respond_with_data(atom, content_type="application/atom+xml")
    config = tmp_path / "listener.toml"
    config.write_text(config_text(tmp_path / "l.db", httpserver.url_for("/feed")), "utf-8")
    assert invoke("db", "upgrade", "--config", str(config))[0] == 0
    assert invoke("poll", "--once", "--config", str(config))[0] == 0
    rows = json.loads(invoke("mentions", "--config", str(config), "--format", "json")[1])
    by_url = {row["url"]: row for row in rows}
    assert by_url["https://a.example/1"]["title"] == "AT&amp;T sells Kryptonite"
    assert by_url["https://a.example/1"]["text"] == "&copy; AT&amp;T"
    assert by_url["https://a.example/2"]["text"] == "Evil Kryptonite locks"  # matched as a word
