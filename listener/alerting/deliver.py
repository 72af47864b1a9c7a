"""Delivery of one notification to one apprise URL: the only module that imports apprise.

Owns: checking and describing apprise URLs (config validation, logs, CLI) and sending one
rendered title/body to one URL.

Rules:
- Nothing apprise leaves this module: ``send`` returns a ``Delivery`` verdict and never raises for
  delivery problems (apprise's own ``notify()`` style); no apprise type or exception escapes.
- Secrets never leave either. A URL is shown as apprise prints it with ``privacy=True``, plus
  ``+Header=value`` values masked (apprise prints those, and webhook tokens live there); every line
  taken from apprise's log is masked with the URL's password, its header values and each
  path/query token (longer than 8 characters) that the privacy URL hides. An unloadable URL is
  shown as ``scheme://***``.
- apprise's log records are diverted while one of our calls runs. A context variable marks the
  call (apprise copies it into its worker threads), so concurrent sends never see each other's
  lines. The diverted lines build ``Delivery.error`` and are logged here, masked, at DEBUG; they
  never reach the root handlers unmasked. To keep the reasons apprise only logs at DEBUG ("Socket
  Exception: ..."), the ``apprise`` logger is set to DEBUG; outside our calls a filter still only
  passes what the root logger's level would.
- Every call builds its own ``Apprise`` with in-memory persistent storage: nothing on disk.
- Titles are one line: line breaks and control characters are removed before apprise sees them,
  so a title cannot add a mail header.
- ``timeout`` bounds the whole send (apprise's ``service_timeout``) and, unless the URL sets its
  own ``cto``/``rto``, each socket connect and read.
- ``key`` travels with every attempt where the channel can carry it: ``+Idempotency-Key`` for
  json/form/xml webhooks, the Message-ID of mail (stamped by ``alerting.wire``). The verdict says
  whether a failure is permanent, uncertain (the receiver may have the message) or came with a
  ``Retry-After``, from what ``alerting.wire`` saw on the wire.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import parse_qsl

import apprise

from listener.alerting import wire
from listener.alerting.masking import Masker, fallback_public, message, summary
from listener.untrusted import for_terminal

_log = logging.getLogger(__name__)

_FORMATS = {
    "text": apprise.NotifyFormat.TEXT,
    "markdown": apprise.NotifyFormat.MARKDOWN,
    "html": apprise.NotifyFormat.HTML,
}
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_ANY_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{0,31})://\S*")
_WEBHOOKS = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})  # take +Header=value
_MAIL = frozenset({"mailto", "mailtos"})

# apprise's PGP helper imports the stdlib ``imghdr`` when its plugins load (deprecated in 3.11,
# gone in 3.13, where apprise installs a shim). Importing it once here, with exactly that warning
# ignored, keeps the DeprecationWarning out of the first send (pytest runs with warnings as errors).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "'imghdr' is deprecated", DeprecationWarning)
    with contextlib.suppress(ImportError):
        importlib.import_module("imghdr")


@dataclass(frozen=True, slots=True)
class Delivery:
    """The verdict of one send. ``error`` is one line with secrets masked; ``target`` is the URL
    as apprise prints it with ``privacy=True``. For a failure: ``uncertain`` when it broke after
    the message went out (the receiver may have it), ``permanent`` when the receiver refused it
    for good (HTTP 4xx but 408/429, SMTP 5xx), ``retry_after`` seconds when it asked for that."""

    ok: bool
    error: str | None
    target: str
    uncertain: bool = False
    permanent: bool = False
    retry_after: float | None = None


def idempotency_key(*parts: object) -> str:
    """A stable key for one notification, from what identifies it (e.g. its outbox row)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return f"listener-{digest[:32]}"


def message_id(key: str, url: str) -> str:
    """The Message-ID of a mail sent with ``key``: the same for every attempt."""
    query = dict(parse_qsl(url.partition("?")[2]))
    sender = query.get("from", "")
    domain = sender.rpartition("@")[2].strip(" >") if "@" in sender else ""
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", domain or "-"):
        domain = ""
    return f"<{key}@{domain or 'listener.invalid'}>"


# -- apprise's log: diverted per call ------------------------------------------------------------

_captured: ContextVar[list[logging.LogRecord] | None] = ContextVar(
    "listener_apprise_records", default=None
)


class _Divert(logging.Filter):
    """On the ``apprise`` logger: keeps the records of the running call for us; outside our calls
    lets through only what the root logger's level would."""

    def filter(self, record: logging.LogRecord) -> bool:
        records = _captured.get()
        if records is None:
            return record.levelno >= logging.getLogger().getEffectiveLevel()
        if getattr(record, "apprise_capture", True):  # apprise marks local-only lines False
            records.append(record)
        return False


_apprise_logger = logging.getLogger(apprise.LOGGER_NAME)
if not any(isinstance(f, _Divert) for f in _apprise_logger.filters):
    _apprise_logger.addFilter(_Divert())
_apprise_logger.setLevel(logging.DEBUG)


@contextlib.contextmanager
def _capture() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    token = _captured.set(records)
    try:
        yield records
    finally:
        _captured.reset(token)


def _note(text: str) -> None:
    """Add an error line of our own to the running capture."""
    records = _captured.get()
    if records is not None:
        records.append(
            logging.makeLogRecord({"msg": text, "levelno": logging.ERROR, "levelname": "ERROR"})
        )


# -- loading URLs --------------------------------------------------------------------------------


def _asset(timeout: float | None = None) -> apprise.AppriseAsset:
    return apprise.AppriseAsset(
        storage_mode=apprise.PersistentStoreMode.MEMORY,  # never write apprise's store to disk
        secure_logging=True,
        service_timeout=timeout,
    )


def _load(url: str, asset: apprise.AppriseAsset) -> apprise.NotifyBase | None:
    """The apprise plugin for ``url``, or None; apprise logs the reason (call inside _capture)."""
    try:
        return apprise.Apprise.instantiate(url, asset=asset)
    except Exception as exc:  # a foreign error stops here; its text becomes the (masked) reason
        _note(f"{type(exc).__name__}: {exc}")
        return None


def _privacy_url(plugin: apprise.NotifyBase) -> str:
    """apprise's privacy URL with the user name masked too (apprise masks only the password;
    a user name such as an SMTP login is an account identifier and is shown nowhere)."""
    # apprise types most of its API, but the plugins' url() is unannotated (it returns str)
    text: str = plugin.url(privacy=True)  # type: ignore[no-untyped-call]
    scheme, sep, rest = text.partition("://")
    authority, slash, path = rest.partition("/")
    if sep and "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        masked = ":".join("****" if part else part for part in userinfo.split(":", 1))
        text = f"{scheme}{sep}{masked}@{host}{slash}{path}"
    return text


def _short(target: str) -> str:
    return target.split("?", 1)[0]


def _with_timeouts(url: str, timeout: float) -> str:
    """``url`` with ``cto``/``rto`` (socket connect/read timeouts) added unless already set."""
    base, _, query = url.partition("?")
    present = {key.lower() for key, _ in parse_qsl(query, keep_blank_values=True)}
    extra = "&".join(f"{key}={timeout:g}" for key in ("cto", "rto") if key not in present)
    if not extra:
        return url
    joiner = "&" if query and not query.endswith("&") else ""
    return f"{base}?{query}{joiner}{extra}"


def _inspect(url: str) -> tuple[str | None, list[logging.LogRecord]]:
    """The URL as apprise prints it with privacy=True (header values masked too), or None when
    apprise cannot load it; and what apprise logged meanwhile."""
    with _capture() as records:
        plugin = _load(url, _asset())
    if plugin is None:
        return None, records
    public = _privacy_url(plugin)
    return Masker(url, public)(public), records


def _unloadable(url: str) -> str:
    match = _SCHEME.match(url)
    return f"{match.group(1)}://***" if match else "***"


def _rejected(url: str, records: Sequence[logging.LogRecord]) -> str:
    reason = summary(records, Masker(url, fallback_public(url))) or "unknown reason"
    # apprise echoes an unloadable URL with only the middle of its secrets hidden ("p...w")
    reason = _ANY_URL.sub(lambda m: f"{m.group(1)}://***", reason)
    return f"apprise cannot use this URL: {reason}"


def _relog(records: Sequence[logging.LogRecord], mask: Masker) -> None:
    for record in records:
        _log.debug("apprise %s: %s", record.levelname.lower(), mask(message(record)))


# -- public API ----------------------------------------------------------------------------------


def check_url(url: str) -> str | None:
    """None when apprise understands the URL, else a one-line reason (used by config validation).
    The reason never contains the secret parts of the URL."""
    public, records = _inspect(url)
    return None if public is not None else _rejected(url, records)


def describe(url: str) -> str:
    """The URL as apprise prints it with privacy=True (for logs and the CLI; ``+Header`` values
    masked too); ``scheme://***`` when apprise cannot load it."""
    public, _ = _inspect(url)
    return public if public is not None else _unloadable(url)


# apprise's message types (icons and colours in Slack, Teams, Discord...; "type" in webhooks)
NOTIFY_TYPES = ("info", "success", "warning", "failure")
_NOTIFY_TYPES = {
    "info": apprise.NotifyType.INFO,
    "success": apprise.NotifyType.SUCCESS,
    "warning": apprise.NotifyType.WARNING,
    "failure": apprise.NotifyType.FAILURE,
}


def send(
    url: str,
    *,
    title: str,
    body: str,
    body_format: str,
    attach_plain: str | None = None,
    timeout: float = 20.0,
    key: str | None = None,
    notify_type: str = "info",
) -> Delivery:
    """Send one notification to one apprise URL. ``body_format``: "text" | "markdown" | "html".

    ``key`` (see ``idempotency_key``) goes with every attempt: as an ``Idempotency-Key`` header
    to json/form/xml webhooks (unless the URL sets one) and as the Message-ID of mail; other
    channels cannot carry it.

    Never raises for delivery problems: returns ``Delivery(ok=False, error=...)`` with one masked
    line built from what apprise logged. Raises ValueError only for a bad ``body_format`` or
    ``timeout`` (a programming error).

    ``attach_plain`` is accepted but unused: apprise's email plugin sends an HTML body as
    multipart/alternative and derives the text/plain part from the HTML itself; it has no way to
    take a separate plain part.
    """
    del attach_plain  # see the docstring: apprise derives the plain part itself
    notify_format = _FORMATS.get(body_format)
    if notify_format is None:
        raise ValueError(f"body_format must be one of {sorted(_FORMATS)}, not {body_format!r}")
    if not 0 < timeout < 24 * 3600:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    target, loading = _inspect(url)
    if target is None:
        return Delivery(
            ok=False,
            error=f"{_unloadable(url)}: {_rejected(url, loading)}",
            target=_unloadable(url),
        )
    one_line_title = " ".join(for_terminal(title).split())
    scheme = _scheme(url)
    keyed = _with_header(url, "Idempotency-Key", key) if key and scheme in _WEBHOOKS else url
    mail_id = message_id(key, url) if key and scheme in _MAIL else None
    with _capture() as records, wire.watch(mail_id) as seen_on_wire:
        plugin = _load(_with_timeouts(keyed, timeout), _asset(timeout))
        if plugin is None:  # apprise loaded the URL a moment ago; only our cto/rto differ
            return Delivery(
                ok=False, error=f"{_short(target)}: {_rejected(url, records)}", target=target
            )
        mask = Masker(url, _privacy_url(plugin))
        try:
            notifier = apprise.Apprise(asset=plugin.asset)
            notifier.add(plugin)
            result = notifier.notify(
                body=body,
                title=one_line_title,
                body_format=notify_format,
                notify_type=_NOTIFY_TYPES.get(notify_type, apprise.NotifyType.INFO),
            )
            ok, timed_out = bool(result), result.status == apprise.AppriseResultStatus.TIMEOUT
            result.close()
        except Exception as exc:  # no apprise error crosses this boundary
            _note(f"apprise failed: {type(exc).__name__}: {exc}")
            ok, timed_out = False, False
    seen = list(records)  # a worker apprise gave up on may still be appending
    _relog(seen, mask)
    if ok:
        return Delivery(ok=True, error=None, target=target)
    reason = summary(seen, mask)
    if timed_out:
        reason = f"timed out after {timeout:g} s" + (f" ({reason})" if reason else "")
    refused = wire.permanent(seen_on_wire)
    uncertain = refused is None and (seen_on_wire.uncertain or (timed_out and seen_on_wire.started))
    if uncertain:
        reason = f"uncertain, the receiver may have it: {reason or 'no answer'}"
    return Delivery(
        ok=False,
        error=f"{_short(target)}: {reason or 'apprise reported a failure without a reason'}",
        target=target,
        uncertain=uncertain,
        permanent=refused is not None,
        retry_after=seen_on_wire.retry_after,
    )


def _scheme(url: str) -> str:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def _with_header(url: str, name: str, value: str) -> str:
    """``url`` with apprise's ``+Name=value`` header parameter, unless it sets that header."""
    base, _, query = url.partition("?")
    present = {k.lower() for k, _ in parse_qsl(query.replace("+", "%2B"), keep_blank_values=True)}
    if f"+{name.lower()}" in present:
        return url
    joiner = "&" if query and not query.endswith("&") else ""
    return f"{base}?{query}{joiner}+{name}={value}"
