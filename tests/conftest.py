"""Shared fixtures: real databases (SQLite files and a PostgreSQL server started for the session),
migrated with the shipped Alembic migrations."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))  # helpers: httpd, pgserver, feeds

import pgserver

from listener.storage import engine as db

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    reason = pgserver.available()
    if reason is not None:
        if os.environ.get("LISTENER_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here but unavailable: {reason}")
        pytest.skip(reason)
    with pgserver.server() as url:
        yield url


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> str:
    """A migrated template database; each test gets a copy of it."""
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS listener_template"))
        conn.execute(text("CREATE DATABASE listener_template"))
    admin.dispose()
    url = make_url(pg_admin_url).set(database="listener_template").render_as_string(False)
    engine = db.connect(url)
    db.upgrade(engine)
    engine.dispose()
    return "listener_template"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database URL, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'listener.db'}"
        engine = db.connect(url)
        db.upgrade(engine)
        engine.dispose()
        yield url
        return
    admin_url = request.getfixturevalue("pg_admin_url")
    template = request.getfixturevalue("pg_template")
    yield from _copy_of(admin_url, template)


@pytest.fixture
def pg_database(pg_admin_url: str, pg_template: str) -> Iterator[str]:
    """The URL of an empty, migrated PostgreSQL database (for tests of several daemons)."""
    yield from _copy_of(pg_admin_url, pg_template)


def _copy_of(admin_url: str, template: str) -> Iterator[str]:
    """A database copied from ``template`` for one test, dropped after it."""
    name = f"listener_test_{os.getpid()}_{next(_counter)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield make_url(admin_url).set(database=name).render_as_string(False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = db.connect(db_url)
    yield eng
    eng.dispose()
