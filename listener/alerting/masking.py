"""Masking of apprise URLs and of what apprise logs about them (used by ``alerting.deliver``).

Owns: finding the secrets of one URL (userinfo password, ``+Header=value`` values, long path and
query tokens the privacy URL hides), replacing them with ``****``, and turning apprise's log
records of one call into one masked line. Pure: no apprise import, no I/O.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from urllib.parse import quote, unquote

MASK = "****"
_TOKEN_MIN = 9  # path/query tokens longer than 8 characters may be secrets
_TOKEN_SPLIT = re.compile(r"[/?&=@:#,;\s]+")
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_EXCEPTION = re.compile(r"\bException: (.+)")
ERROR_MAX = 400  # characters; an error is one line for logs, the CLI and the outbox table


def message(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except (TypeError, ValueError):  # a malformed format string in a plugin
        text = str(record.msg)
    return " ".join(text.split())


class Masker:
    """Replaces the secrets of one URL with ****: the userinfo (user and password, any length),
    the values of ``+Header=value`` query parameters (apprise prints those even with
    privacy=True; they are where webhook tokens live) and every path/query token of 9+
    characters that does not appear in ``public`` (the privacy URL)."""

    def __init__(self, url: str, public: str) -> None:
        rest = url.split("://", 1)[1] if "://" in url else url
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        userinfo, at, _host = authority.rpartition("@")
        found: set[str] = set()
        user, _, password = userinfo.partition(":") if at else ("", "", "")
        for part in (user, password):  # a login name is an account identifier: masked too
            if part:
                found |= _variants(part)
        query = rest.partition("?")[2]
        for pair in query.split("&"):  # header values (+Name=value) carry webhook credentials
            key, _, value = pair.partition("=")
            if unquote(key).startswith("+") and value:
                found |= _variants(value)
        visible = f"{public} {unquote(public)}"
        for text in (rest, unquote(rest)):
            for token in _TOKEN_SPLIT.split(text):
                if len(token) >= _TOKEN_MIN and token not in visible:
                    found |= _variants(token)
        self._secrets = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if len(secret) >= 4:
                text = text.replace(secret, MASK)
            else:  # a very short password: only where it stands alone, not inside words
                text = re.sub(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", MASK, text)
        return text


def _variants(secret: str) -> set[str]:
    plain = unquote(secret)
    return {v for v in (secret, plain, quote(plain, safe="")) if v}


def fallback_public(url: str) -> str:
    """What of an unloadable URL may be shown: its scheme and a host name with a dot in it."""
    match = _SCHEME.match(url)
    if match is None:
        return ""
    rest = url[match.end() :]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = authority.rpartition("@")[2].rsplit(":", 1)[0]
    return f"{match.group(1)}://{host if '.' in host else ''}"


def _innermost(detail: str) -> str:
    """The root cause of a wrapped requests/urllib3 error ("... (Caused by X('...: reason'))")."""
    if "(Caused by " not in detail:
        return detail
    cause = detail.rsplit(": ", 1)[-1].rstrip("\"')")
    return cause + ")" * (cause.count("(") - cause.count(")"))


def summary(records: Sequence[logging.LogRecord], mask: Masker) -> str | None:
    """One line from apprise's records: its warnings and errors, then the last exception detail."""
    problems: list[str] = []
    detail = None
    for record in records:
        text = message(record)
        if record.levelno >= logging.WARNING:
            if text and text not in problems:
                problems.append(text)
        elif (found := _EXCEPTION.search(text)) is not None:
            detail = _innermost(found.group(1))
    line = "; ".join(problems)
    if detail:
        line = f"{line} ({detail})" if line else detail
    if not line:
        return None
    line = mask(line)
    return line if len(line) <= ERROR_MAX else line[: ERROR_MAX - 3] + "..."
