"""SQL helpers shared by the storage modules: transactions that translate SQLAlchemy errors into
StorageError, IN-list chunking, and the dialect's INSERT (for ON CONFLICT; the PostgreSQL
dialect is imported only when a PostgreSQL database is used: 2 MB a SQLite process needs not)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    DisconnectionError,
    InterfaceError,
    OperationalError,
    PendingRollbackError,
    SQLAlchemyError,
)
from sqlalchemy.exc import (
    TimeoutError as PoolTimeoutError,
)

from listener.errors import StorageError

T = TypeVar("T")
CHUNK = 500


def guard(action: str, work: Callable[[], T]) -> T:
    try:
        return work()
    except SQLAlchemyError as exc:
        raise StorageError(f"{action}: {describe(exc)}") from exc


def chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def dialect_insert(connection: Connection, table: Any) -> Any:
    return insert_for(connection.dialect.name, table)


def insert_for(dialect_name: str, table: Any) -> Any:
    """The dialect's INSERT (with ON CONFLICT) for ``table``: PostgreSQL's, else SQLite's."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    return sqlite.insert(table)


@contextmanager
def transaction(engine: Engine, action: str) -> Iterator[Connection]:
    """One transaction; SQLAlchemy errors leave as StorageError("<action>: ...")."""
    try:
        with engine.begin() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise StorageError(f"{action}: {describe(exc)}") from exc


def describe(exc: SQLAlchemyError) -> str:
    """The first line of the database's own message, without SQL or parameters."""
    first = str(getattr(exc, "orig", None) or exc).splitlines()
    return first[0] if first else type(exc).__name__


_OUTAGES = (OperationalError, InterfaceError, DisconnectionError, PendingRollbackError,
            PoolTimeoutError)  # fmt: skip


def outage(exc: BaseException) -> str | None:
    """The kind of database failure behind ``exc`` (a StorageError or an SQLAlchemy error) when
    it is the database's fault rather than the data's: "locked", "read-only", "disk full",
    "unavailable" (connection refused, dropped, server restarting) or "error"; else None."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, SQLAlchemyError):
        cause = cause.__cause__
    if not isinstance(cause, _OUTAGES):
        return None
    text = describe(cause).lower() if isinstance(cause, SQLAlchemyError) else ""
    if "locked" in text or "busy" in text:
        return "locked"
    if "readonly" in text or "read-only" in text or "read only" in text:
        return "read-only"
    if ("disk" in text and "full" in text) or "no space" in text:
        return "disk full"
    if isinstance(cause, OperationalError) and not any(
        word in text for word in ("connect", "terminat", "shutting down", "starting up", "closed")
    ):
        return "error"
    return "unavailable"
