"""Storage: SQLAlchemy 2.x tables, the engine (SQLite WAL / PostgreSQL), store functions and the
Alembic migrations shipped inside the package. The only SQLAlchemy user; its exceptions are
translated into StorageError here."""
