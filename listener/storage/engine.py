"""Engine creation and schema management (Alembic, migrations shipped in this package).

SQLite gets WAL, foreign keys, a busy timeout and synchronous=NORMAL on every connection; its
parent directory is created. ``check_schema`` refuses to go on when the database is not at the
head revision, with a one-line hint.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from listener.errors import ConfigError, SchemaOutdatedError, StorageError
from listener.storage.sql import describe

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration in migrations/versions (a test keeps the two in step). Knowing it here
# lets every command check the schema without importing Alembic, which costs ~0.2 s per start.
SCHEMA_HEAD = "0010"


def display_url(url: str) -> str:
    """The URL with any password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


# SQLAlchemy driver name -> the module it imports
_DRIVERS = {"pysqlite": "sqlite3", "psycopg": "psycopg", "psycopg2": "psycopg2"}


def check_url(url: str) -> str | None:
    """What is wrong with a database URL before anything connects to it (one line naming the
    path or driver and the cause), or None: the scheme is supported, its driver is installed,
    and an SQLite file can be opened for writing or created (its directory exists and is
    writable, or can be created)."""
    parsed, problem = _parse(url)
    if problem is None and parsed.get_backend_name() == "sqlite":
        return _sqlite_problem(parsed.database)
    return problem


def _parse(url: str) -> tuple[Any, str | None]:
    """The URL parsed (``postgresql://`` meaning psycopg 3), and what makes it unusable: not a
    URL, a database other than SQLite and PostgreSQL, or a driver that is not installed."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None, (
            "not a valid database URL; hint: sqlite:////var/lib/listener/listener.db "
            "or postgresql+psycopg://user@host/db"
        )
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        return parsed, f"unsupported database {backend!r}; hint: use sqlite:/// or postgresql://"
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    module = _DRIVERS.get(parsed.get_driver_name(), parsed.get_driver_name())
    if importlib.util.find_spec(module) is None:
        return parsed, (
            f"the {backend} driver {module!r} is not installed; "
            "hint: pip install 'listener[postgres]'"
        )
    return parsed, None


def _sqlite_problem(database: str | None) -> str | None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    if path.exists():
        if path.is_dir():
            return f"{path} is a directory, not a database file"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"{path}: no permission to read and write the database file"
        if not os.access(path.parent, os.W_OK | os.X_OK):
            # SQLite writes its WAL and shared-memory files beside the database
            return f"{path.parent}: directory not writable (SQLite keeps its WAL file there)"
        return None
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory; cannot create {path}"
    if not os.access(existing, os.W_OK | os.X_OK):
        missing = "" if existing == path.parent else f" (to create {path.parent})"
        return f"{existing}: directory not writable{missing}; cannot create {path}"
    return None


SQLITE_STATEMENTS = 32  # prepared statements kept per SQLite connection
INSERT_PAGE_ROWS = 100  # rows per statement of a bulk insert on SQLite (see _sqlite_engine)


def connect(url: str) -> Engine:
    """Create an engine for ``url``. Raises ConfigError for a bad URL, StorageError otherwise."""
    parsed, problem = _parse(url)
    if problem is not None:
        raise ConfigError(f"database.url: {problem} ({display_url(url)})")
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed)
        return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5)
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot open database {display_url(url)}: {exc}") from exc


def _sqlite_engine(parsed: Any) -> Engine:
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        if not Path(database).exists():
            problem = _sqlite_problem(database)
            if problem is not None:
                raise StorageError(f"cannot create the SQLite database: {problem}")
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the database directory {Path(database).parent}: {exc.strerror}"
            ) from exc
    # One pooled connection per thread that needs one; pragmas run once per connection.
    engine = create_engine(
        parsed,
        pool_size=2,
        max_overflow=4,
        # sqlite3 keeps this many prepared statements per connection (default 128); a bulk
        # insert prepares one per batch size, big ones: 128 of them held 5-6 MB of the
        # daemon in a cold cycle of 1,000 feeds; 32 stores as fast (bench/ingest_stages.py)
        connect_args={
            "timeout": 30,
            "check_same_thread": False,
            "cached_statements": SQLITE_STATEMENTS,
        },
        # A bulk insert with RETURNING goes in statements of this many rows (SQLAlchemy's
        # default, 1,000, prepares one statement of ~27,000 parameters per big batch of
        # mentions, kept in the statement cache: measured 3.6 MB more of the daemon's heap)
        insertmanyvalues_page_size=INSERT_PAGE_ROWS,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def head_revision() -> str:
    return SCHEMA_HEAD


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None for an empty database)."""
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read the schema version: {describe(exc)}") from exc
    return rows[0][0] if len(rows) == 1 else None


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to head. Returns (revision before, revision after)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    before = current_revision(engine)
    try:
        command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StorageError(f"migration failed: {describe(exc)}") from exc
    return before, head_revision()


def check_schema(engine: Engine) -> None:
    """Raise SchemaOutdatedError unless the database is at the head revision."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    state = "has no listener schema" if current is None else f"is at revision {current}"
    raise SchemaOutdatedError(
        f"database {display_url(str(engine.url))} {state}, this version needs {head}; "
        "hint: run `listener db upgrade`"
    )


def probe(engine: Engine, *, timeout: float = 2.0) -> tuple[str, str] | None:
    """None when the database answers a read and would take a write (SQLite: the write lock can
    be had within ``timeout``; nothing is written), else (kind, reason) as ``sql.outage`` names
    them. For health checks: the daemon's watchdog and ``listener status``."""
    from listener.storage.sql import outage

    try:
        if engine.dialect.name != "sqlite":
            with engine.connect() as conn:
                conn.execute(text("SELECT count(*) FROM brands"))
            return None
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT count(*) FROM brands")
            cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            try:
                cursor.execute("BEGIN IMMEDIATE")  # the write lock, as a writer would need it
                try:  # a real (rolled back) write: a read-only file fails only here
                    cursor.execute("UPDATE alembic_version SET version_num = version_num")
                finally:
                    cursor.execute("ROLLBACK")
            finally:
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()
        finally:
            raw.close()
    except SQLAlchemyError as exc:
        return outage(exc) or "error", describe(exc)
    except Exception as exc:  # the DB-API's own error from the raw connection
        from sqlalchemy.exc import OperationalError

        wrapped = OperationalError("probe", None, exc)
        return outage(wrapped) or "error", describe(wrapped)
    return None
