"""The one exception tree of listener.

    ListenerError                 base of everything listener raises on purpose
     +-- ConfigError              a configuration file or value is wrong (exit code 2)
     +-- SourceError              one source could not deliver items
     |    +-- FetchError          network, HTTP status, size cap, timeout, redirect trouble
     |    +-- ParseError          the body is not a feed we can read
     +-- StorageError             the database failed
     |    +-- SchemaOutdatedError the database schema is older than the code (exit code 2)
     +-- InputError               a file or stream given on the command line is malformed

A notification that cannot be delivered is a verdict (apprise's style: the outbox keeps it and
retries), not an exception, so alerting has no error class of its own.

Foreign exceptions (httpx, feedparser, SQLAlchemy, apprise) are translated at the stage boundary
with ``raise ... from exc``; none of them crosses a stage. Messages are one line, say what and
where, and never contain a secret.
"""

from __future__ import annotations


class ListenerError(Exception):
    """Base class for all errors listener raises on purpose."""


class ConfigError(ListenerError):
    """Configuration is invalid. The message names file, key path, bad value and a hint.

    ``detail`` optionally holds extra lines a human needs to see the problem, such as a query
    with a caret under the error position. ``more`` holds further problems found in the same
    check (each one line, like the message), so one run reports every mistake.
    """

    def __init__(
        self, message: str, *, detail: str | None = None, more: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.detail = detail
        self.more = more

    @classmethod
    def of(cls, problems: list[ConfigError]) -> ConfigError:
        """One error standing for several (the first with its detail, the others as ``more``)."""
        first = problems[0]
        more = [*first.more]
        for problem in problems[1:]:
            more.append(str(problem))
            more.extend(problem.more)
        return cls(str(first), detail=first.detail, more=tuple(more))


class SourceError(ListenerError):
    """A source could not deliver items."""


class FetchError(SourceError):
    """Fetching failed.

    ``status`` is the HTTP status when there was one; ``retry_after`` is the delay in seconds a
    server asked for (429/503 with Retry-After), else None; ``body`` the start of an error
    answer's body (at most 4 KB, untrusted), for APIs that explain themselves there.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.body = body


class ParseError(SourceError):
    """The body could not be read as a feed at all."""


class StorageError(ListenerError):
    """The database failed."""


class SchemaOutdatedError(StorageError):
    """The database schema is not at the revision this code needs."""


class InputError(ListenerError):
    """A file or stream given on the command line is malformed; the message names file and line."""
