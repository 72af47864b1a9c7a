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
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

import apprise

from listener.untrusted import for_terminal

_log = logging.getLogger(__name__)

_FORMATS = {
    "text": apprise.NotifyFormat.TEXT,
    "markdown": apprise.NotifyFormat.MARKDOWN,
    "html": apprise.NotifyFormat.HTML,
}
_MASK = "****"
_TOKEN_MIN = 9  # path/query tokens longer than 8 characters may be secrets
_TOKEN_SPLIT = re.compile(r"[/?&=@:#,;\s]+")
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_ANY_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{0,31})://\S*")
_EXCEPTION = re.compile(r"\bException: (.+)")
_ERROR_MAX = 400  # characters; an error is one line for logs, the CLI and the outbox table

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
    as apprise prints it with ``privacy=True``."""

    ok: bool
    error: str | None
    target: str


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


def _message(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except (TypeError, ValueError):  # a malformed format string in a plugin
        text = str(record.msg)
    return " ".join(text.split())


# -- masking -------------------------------------------------------------------------------------


class _Masker:
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
                text = text.replace(secret, _MASK)
            else:  # a very short password: only where it stands alone, not inside words
                text = re.sub(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", _MASK, text)
        return text


def _variants(secret: str) -> set[str]:
    plain = unquote(secret)
    return {v for v in (secret, plain, quote(plain, safe="")) if v}


def _fallback_public(url: str) -> str:
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


def _summary(records: Sequence[logging.LogRecord], mask: _Masker) -> str | None:
    """One line from apprise's records: its warnings and errors, then the last exception detail."""
    problems: list[str] = []
    detail = None
    for record in records:
        text = _message(record)
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
    return line if len(line) <= _ERROR_MAX else line[: _ERROR_MAX - 3] + "..."


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
    return _Masker(url, public)(public), records


def _unloadable(url: str) -> str:
    match = _SCHEME.match(url)
    return f"{match.group(1)}://***" if match else "***"


def _rejected(url: str, records: Sequence[logging.LogRecord]) -> str:
    reason = _summary(records, _Masker(url, _fallback_public(url))) or "unknown reason"
    # apprise echoes an unloadable URL with only the middle of its secrets hidden ("p...w")
    reason = _ANY_URL.sub(lambda m: f"{m.group(1)}://***", reason)
    return f"apprise cannot use this URL: {reason}"


def _relog(records: Sequence[logging.LogRecord], mask: _Masker) -> None:
    for record in records:
        _log.debug("apprise %s: %s", record.levelname.lower(), mask(_message(record)))


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


def send(
    url: str,
    *,
    title: str,
    body: str,
    body_format: str,
    attach_plain: str | None = None,
    timeout: float = 20.0,
) -> Delivery:
    """Send one notification to one apprise URL. ``body_format``: "text" | "markdown" | "html".

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
    with _capture() as records:
        plugin = _load(_with_timeouts(url, timeout), _asset(timeout))
        if plugin is None:  # apprise loaded the URL a moment ago; only our cto/rto differ
            return Delivery(
                ok=False, error=f"{_short(target)}: {_rejected(url, records)}", target=target
            )
        mask = _Masker(url, _privacy_url(plugin))
        try:
            notifier = apprise.Apprise(asset=plugin.asset)
            notifier.add(plugin)
            result = notifier.notify(body=body, title=one_line_title, body_format=notify_format)
            ok, timed_out = bool(result), result.status == apprise.AppriseResultStatus.TIMEOUT
            result.close()
        except Exception as exc:  # no apprise error crosses this boundary
            _note(f"apprise failed: {type(exc).__name__}: {exc}")
            ok, timed_out = False, False
    seen = list(records)  # a worker apprise gave up on may still be appending
    _relog(seen, mask)
    if ok:
        return Delivery(ok=True, error=None, target=target)
    reason = _summary(seen, mask)
    if timed_out:
        reason = f"timed out after {timeout:g} s" + (f" ({reason})" if reason else "")
    return Delivery(
        ok=False,
        error=f"{_short(target)}: {reason or 'apprise reported a failure without a reason'}",
        target=target,
    )
