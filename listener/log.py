"""Logging setup: human-readable lines on a terminal, one JSON object per line otherwise
(journald, files), and a filter that masks every known secret in every record."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from listener.untrusted import for_terminal

_SECRET_MASK = "***"  # noqa: S105 (the mask, not a password)


class RedactingFilter(logging.Filter):
    """Replaces each secret (e.g. interpolated ${ENV} values) with *** in the final message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, _SECRET_MASK)
            record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=True)


class TerminalFormatter(logging.Formatter):
    """Human-readable lines; whatever came from the web cannot steer the terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return for_terminal(super().format(record), keep_newlines=True)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record arrives, not to the stream it was at
    set-up: a progress display that redirects stderr (rich's) then prints log lines above its
    bar instead of on the bar's line."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass  # the stream is always the current sys.stderr


def setup(level: str = "info", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once for the process (called by the CLI)."""
    handler = _StderrHandler()
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    if use_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TerminalFormatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        )
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
