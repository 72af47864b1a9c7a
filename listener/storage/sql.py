"""SQL helpers shared by the storage modules: transactions that translate SQLAlchemy errors into
StorageError, IN-list chunking, and the dialect's INSERT (for ON CONFLICT)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

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
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


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
