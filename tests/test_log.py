"""Logging: secrets never reach a log line, JSON lines are valid and escape control characters."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from listener.log import JsonFormatter, RedactingFilter


def test_secrets_are_masked_in_every_record() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(["s3cr3t-token", "ab"]))
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)  # other tests may have raised the root level
    try:
        logger.warning("fetch %s failed: %s", "https://x/?t=s3cr3t-token", "bad \x1b[31m")
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue().strip()
    record = json.loads(line)
    assert "s3cr3t-token" not in line
    assert record["message"] == "fetch https://x/?t=*** failed: bad \x1b[31m"
    assert "\x1b" not in line  # escaped as \u001b in the JSON text
    assert record["level"] == "warning"


def test_terminal_lines_drop_escape_sequences() -> None:
    from listener.log import TerminalFormatter

    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "title %s", ("\x1b]0;pwned\x07ok",), None
    )
    assert TerminalFormatter("%(message)s").format(record) == "title ok"  # the whole OSC goes


def test_log_lines_follow_a_redirected_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """A progress display (rich) swaps sys.stderr to print log lines above its bar: the handler
    must write to the stderr of the moment, not the one it was set up with."""
    from listener import log as logsetup

    logsetup.setup("info", "text")
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", swapped)
    logging.getLogger("listener.test").warning("while the bar is showing")
    assert "while the bar is showing" in swapped.getvalue()


def test_text_log_lines_from_setup_drop_escape_sequences(monkeypatch: pytest.MonkeyPatch) -> None:
    """What setup installs for a terminal sanitises web text (it once used a plain Formatter)."""
    from listener import log as logsetup

    logsetup.setup("info", "text")
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", swapped)
    logging.getLogger("listener.test").warning("title %s", "\x1b]0;pwned\x07ok")
    assert "title ok" in swapped.getvalue()
    assert "\x1b" not in swapped.getvalue()
