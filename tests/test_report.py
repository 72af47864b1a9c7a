"""`listener report`: one self-contained HTML file about an alert or a brand's period, checked as
a document (escaping, no external resources, the response timeline) and, where Debian's
chromium is installed, loaded in a real headless browser that must make no request and draw a
page that is not blank."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import zlib
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from test_alert import NOW, hook, receiver, route, run_cli, storm_now
from test_backtest import fill_history

import listener.cli.report  # noqa: F401  (registers the command)
from listener.config import validate_config
from listener.service.alert import evaluate
from listener.service.deliver import deliver
from listener.storage import engine as dbengine

__all__ = ["receiver"]  # a fixture, imported for its side effect

HOSTILE = '<img src="https://evil.example/x.png" onerror="alert(1)"> Velora lock opened'


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend((tag, name, value) for name, value in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture
def reported(
    tmp_path: Path, httpserver: HTTPServer, receiver: list[dict[str, str]]
) -> tuple[tuple[str, str], int]:
    """A storm that fired, was acknowledged by Dana and resolved, in a real SQLite file."""
    import tomllib

    url = f"sqlite:///{tmp_path / 'l.db'}"
    text = (
        f'[database]\nurl = "{url}"\n[log]\nlevel = "error"\n[[brands]]\nname = "Velora"\n'
        '[brands.runbook]\ntext = "Call the duty PR lead."\nurl = "https://wiki.example/rb"\n'
        + route("chat", hook(httpserver))
    )
    config = tmp_path / "listener.toml"
    config.write_text(text, encoding="utf-8")
    settings = validate_config(tomllib.loads(text), file=config, env={})
    engine = dbengine.connect(url)
    dbengine.upgrade(engine)
    fill_history(engine, NOW - timedelta(hours=3))
    evaluate(engine, settings, NOW - timedelta(hours=3))
    storm_now(engine, NOW, title=HOSTILE, every=True)
    assert evaluate(engine, settings, NOW).fired == 1
    deliver(engine, settings, NOW)
    c = ("--config", str(config))
    out = run_cli("alerts", *c, "--state", "firing", "--format", "json")[1]
    [alert] = json.loads(out)
    assert run_cli("alerts", "ack", str(alert["id"]), "--by", "Dana", *c)[0] == 0
    assert evaluate(engine, settings, NOW + timedelta(hours=8)).resolved == 1
    engine.dispose()
    return c, int(alert["id"])


def _check_document(page: str) -> Page:
    parsed = Page()
    parsed.feed(page)
    parsed.close()
    assert "script" not in parsed.tags and "img" not in parsed.tags and "iframe" not in parsed.tags
    for tag, name, value in parsed.attrs:
        assert not name.startswith("on"), (tag, name)
        assert name not in ("src", "srcset", "background"), (tag, name)
        if name == "href":  # links to stories and the runbook: http(s) only, never loaded
            assert tag == "a" and value is not None and re.match(r"https?://", value), value
    # nothing the page would fetch: no url(...) in styles, no @import, no external stylesheet
    assert "url(" not in page and "@import" not in page and "<link" not in page
    assert "default-src 'none'" in page  # and the browser is told to refuse any request
    return parsed


def test_alert_report_is_self_contained_and_tells_the_response(
    reported: tuple[tuple[str, str], int], tmp_path: Path
) -> None:
    c, alert_id = reported
    out_file = tmp_path / "out" / "alert.html"
    code, out, err = run_cli("report", str(alert_id), "--output", str(out_file), *c)
    assert code == 0, err
    assert "Wrote" in out and "Velora" in out
    page = out_file.read_text(encoding="utf-8")
    parsed = _check_document(page)
    text = " ".join(parsed.text)
    assert "Velora: mentions and alerts" in text
    assert parsed.tags.count("svg") == 2  # volume and negative share
    for step in ("first negative mention", "fired", "acknowledged by Dana", "resolved"):
        assert f"#{alert_id} " in text and step in text, step
    assert "Call the duty PR lead." in text and 'href="https://wiki.example/rb"' in page
    assert "Velora lock opened" in text  # the hostile title, as text ...
    assert '<img src="https://evil' not in page  # ... never as markup
    assert "‹img" in page or "&lt;img" in page
    for heading in ("Top stories", "Sources", "Domains", "Response timeline"):
        assert heading in text


def test_brand_report_and_errors(reported: tuple[tuple[str, str], int], tmp_path: Path) -> None:
    c, _ = reported
    target = tmp_path / "brand.html"
    code, _, err = run_cli("report", "--brand", "velora", "--since", "3d", "-o", str(target), *c)
    assert code == 0, err
    page = target.read_text(encoding="utf-8")
    _check_document(page)
    assert "40" in page  # forty angry posts in the period
    code, _, err = run_cli("report", "--brand", "Nobody", "-o", str(target), *c)
    assert code == 2 and "Nobody" in err
    code, _, err = run_cli("report", "999", "-o", str(target), *c)
    assert code == 1 and "no brand alert 999" in err
    code, _, err = run_cli("report", "-o", str(target), *c)
    assert code == 2 and "ALERT_ID or --brand" in err


# -- a real browser ------------------------------------------------------------------------------


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Recorder:
    """A TCP listener standing in as the browser's proxy: every request the page would make to
    the network arrives here, and is counted (and refused)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    self.requests.append(conn.recv(4096))

    def close(self) -> None:
        self.sock.close()


def _png_pixels(data: bytes) -> bytes:
    """The decompressed scanlines of a PNG (filter bytes included): enough to tell a blank
    picture from a drawn one."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat = 8, b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if kind == b"IDAT":
            idat += data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return zlib.decompress(idat)


@pytest.mark.skipif(
    _chromium() is None and not os.environ.get("LISTENER_REQUIRE_CHROMIUM"),
    reason="Debian's chromium is not installed (apt-get install chromium)",
)
def test_report_in_headless_chromium(reported: tuple[tuple[str, str], int], tmp_path: Path) -> None:
    browser = _chromium()
    assert browser is not None, "LISTENER_REQUIRE_CHROMIUM is set but chromium is missing"
    c, alert_id = reported
    target = tmp_path / "alert.html"
    assert run_cli("report", str(alert_id), "-o", str(target), *c)[0] == 0
    shot = tmp_path / "shot.png"
    stderr, requests = _load_in_chromium(browser, target, shot, tmp_path)
    console = [line for line in stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Refused" in line or "Uncaught" in line], console
    assert requests == [], requests  # the page asked the network for nothing
    pixels = _png_pixels(shot.read_bytes())
    assert len(set(pixels)) > 20  # text, bars and lines, not a blank page
    # the control: a page that does load something from the web is seen doing it
    control = tmp_path / "control.html"
    control.write_text(
        '<html><body><img src="http://report-check.example/pixel.png">x</body></html>',
        encoding="utf-8",
    )
    _, requests = _load_in_chromium(browser, control, tmp_path / "control.png", tmp_path)
    assert any("report-check.example" in r for r in requests), requests


# the browser's own background traffic (clock sync, component updates), not the page's
_BROWSER_OWN = re.compile(r"\b(google|googleapis|gstatic|gvt1)\.com\b")


def _load_in_chromium(
    browser: str, page: Path, shot: Path, tmp_path: Path
) -> tuple[str, list[str]]:
    """Load ``page`` headless with every network request sent to a recording proxy; return
    chromium's log and the request lines the page caused."""
    recorder = _Recorder()
    try:
        done = subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-default-browser-check",
                f"--user-data-dir={tmp_path / 'profile'}",
                f"--proxy-server=http://127.0.0.1:{recorder.port}",
                "--proxy-bypass-list=<-loopback>",
                "--enable-logging=stderr", "--v=0", "--window-size=1100,1600",
                f"--screenshot={shot}", page.as_uri(),
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        recorder.close()
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [r.split(b"\r\n", 1)[0].decode("latin-1") for r in recorder.requests if r]
    return done.stderr, [line for line in lines if not _BROWSER_OWN.search(line)]


def test_rendering_leaves_the_import_system_as_it_was() -> None:
    """pygal appends a legacy import finder that makes every failed import warn (an error under
    this suite's settings): `check-config` after a report in one process must still work."""
    import importlib.util
    import sys
    from datetime import UTC, datetime

    from listener.alerting.report import Report, render_report

    now = datetime(2026, 12, 3, tzinfo=UTC)
    render_report(Report("V", now - timedelta(hours=2), now, now, timedelta(hours=1), ()))
    assert not any(type(f).__name__ == "PluginImportFixer" for f in sys.meta_path)
    assert importlib.util.find_spec("no_such_driver_module") is None
