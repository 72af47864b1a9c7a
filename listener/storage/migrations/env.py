"""Alembic environment: runs on the engine handed in by listener.storage.engine.

On SQLite, foreign keys are switched off while migrating: batch migrations rebuild tables
(copy, drop, rename), and dropping a table with foreign keys on would cascade-delete the rows
that point at it. They are switched back on, and checked, afterwards.
"""

from __future__ import annotations

from alembic import context

from listener.storage.tables import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
    if sqlite:
        problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()
        if problems:
            raise RuntimeError(f"foreign key check failed after migration: {problems[:3]}")
