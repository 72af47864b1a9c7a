"""Alembic environment: runs on the engine handed in by listener.storage.engine."""

from __future__ import annotations

from alembic import context

from listener.storage.tables import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
