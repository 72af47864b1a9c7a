"""What happened on the wire during one apprise send: answers, ``Retry-After``, and whether the
receiver may have the message although the send failed. Used by ``alerting.deliver`` only.

Owns two call-site hooks, installed once and active only inside ``watch()`` (a context variable
marks the call; apprise copies it into its worker threads, so concurrent sends never mix):

- ``requests``' ``HTTPAdapter.send`` (apprise's HTTP transport): records each HTTP status and a
  ``Retry-After`` (seconds or an HTTP date), and marks the send *uncertain* when it broke after
  the request went out (read timeout, connection dropped mid-answer). A connect error or connect
  timeout is certain: nothing was sent.
- ``smtplib.SMTP.sendmail`` (apprise's SMTP transport): puts the call's Message-ID on the
  message apprise built (apprise always adds a random one of its own, so a ``+Message-ID``
  header would give two), records SMTP reply codes, and marks the send uncertain when the
  connection timed out or dropped inside the mail transaction (possibly after DATA).

Outside ``watch()`` both hooks call straight through, unchanged. Nothing here changes what is
sent except the Message-ID, and nothing here raises of its own.
"""

from __future__ import annotations

import contextlib
import functools
import re
import smtplib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from requests.adapters import HTTPAdapter
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout, ReadTimeout
from urllib3.exceptions import ConnectTimeoutError

RETRY_AFTER_MAX = 24 * 3600.0  # a longer Retry-After is taken as this


@dataclass
class Wire:
    """What one send saw. ``codes``: HTTP statuses or SMTP reply codes, in order."""

    message_id: str | None = None
    started: bool = False  # a request or mail transaction began: the receiver may have it
    uncertain: bool = False  # it broke after the message went out
    codes: list[int] = field(default_factory=list)
    retry_after: float | None = None
    mail: bool = False


_current: ContextVar[Wire | None] = ContextVar("listener_wire", default=None)


@contextlib.contextmanager
def watch(message_id: str | None = None) -> Iterator[Wire]:
    """Record what the sends inside this block do (and stamp ``message_id`` on mail)."""
    _install()
    wire = Wire(message_id=message_id)
    token = _current.set(wire)
    try:
        yield wire
    finally:
        _current.reset(token)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` value (delta seconds or an HTTP date) in seconds, or None."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), RETRY_AFTER_MAX)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_MAX)


_HEADER_END = re.compile(r"\r?\n\r?\n")
_MESSAGE_ID = re.compile(r"^message-id:[^\n]*\n(?:[ \t][^\n]*\n)*", re.IGNORECASE | re.MULTILINE)


def with_message_id(message: str, message_id: str) -> str:
    """``message`` (as apprise built it) with exactly one Message-ID header: ``message_id``."""
    end = _HEADER_END.search(message)
    split = end.start() + 1 if end else len(message)
    head, rest = message[:split], message[split:]
    newline = "\r\n" if "\r\n" in head else "\n"
    head = _MESSAGE_ID.sub("", head.replace("\r\n", "\n"))
    if newline == "\r\n":
        head = head.replace("\n", "\r\n")
    return f"Message-ID: {message_id}{newline}{head}{rest}"


def _sent_before_failing(exc: BaseException) -> bool:
    """Whether a requests error happened after the request was written."""
    if isinstance(exc, ConnectTimeout):
        return False
    if isinstance(exc, ReadTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    inner = getattr(reason, "reason", reason)
    return not isinstance(inner, ConnectTimeoutError)  # NewConnectionError is one too


_installing = threading.Lock()


def _install() -> None:
    with _installing:
        if not getattr(HTTPAdapter.send, "_listener_wire", False):
            _wrap()


def _wrap() -> None:
    http_send = HTTPAdapter.send
    smtp_send = smtplib.SMTP.sendmail

    @functools.wraps(http_send)
    def send(self: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        wire = _current.get()
        if wire is None:
            return http_send(self, request, *args, **kwargs)
        wire.started = True
        try:
            response = http_send(self, request, *args, **kwargs)
        except (ReadTimeout, RequestsConnectionError) as exc:
            wire.uncertain = wire.uncertain or _sent_before_failing(exc)
            raise
        wire.codes.append(int(response.status_code))
        if response.status_code in (429, 503):
            wire.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return response

    @functools.wraps(smtp_send)
    def sendmail(
        self: smtplib.SMTP, from_addr: str, to_addrs: Any, msg: Any, *args: Any, **kwargs: Any
    ) -> Any:
        wire = _current.get()
        if wire is None:
            return smtp_send(self, from_addr, to_addrs, msg, *args, **kwargs)
        wire.mail = True
        if wire.message_id and isinstance(msg, str):
            msg = with_message_id(msg, wire.message_id)
        wire.started = True
        try:
            refused = smtp_send(self, from_addr, to_addrs, msg, *args, **kwargs)
        except smtplib.SMTPRecipientsRefused as exc:
            wire.codes.extend(int(code) for code, _ in exc.recipients.values())
            raise
        except smtplib.SMTPResponseException as exc:
            wire.codes.append(int(exc.smtp_code))
            raise
        except (OSError, smtplib.SMTPServerDisconnected):
            wire.uncertain = True  # the server may have taken the message before it went quiet
            raise
        wire.codes.extend(int(code) for code, _ in refused.values())
        return refused

    send._listener_wire = True  # type: ignore[attr-defined]
    HTTPAdapter.send = send  # type: ignore[method-assign]
    smtplib.SMTP.sendmail = sendmail  # type: ignore[method-assign]


def permanent(wire: Wire) -> int | None:
    """The code that makes this failure permanent (HTTP 4xx but 408/429; SMTP 5xx), or None."""
    if not wire.codes:
        return None
    if wire.mail:
        hard = [c for c in wire.codes if 500 <= c < 600]
        return hard[0] if hard else None
    last = wire.codes[-1]
    return last if 400 <= last < 500 and last not in (408, 429) else None
