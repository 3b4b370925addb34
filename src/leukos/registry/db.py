"""Engine, connection pragmas and schema migrations of the registry.

SQLite: WAL journal (readers do not block the writer), ``synchronous=FULL`` (an acknowledged
commit survives a killed process and a power cut), foreign keys on, a busy timeout so
concurrent writers queue instead of failing. PostgreSQL: psycopg 3.

The schema is created on first use by running the Alembic migrations shipped in the package
(``leukos/registry/migrations``), never by ``create_all``.
"""

from __future__ import annotations

import threading
from importlib import resources

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from leukos.registry.settings import RegistrySettings

__all__ = ["make_engine", "alembic_config", "upgrade", "downgrade", "current_revision", "open_database",
           "SQLITE_BUSY_TIMEOUT_MS"]

SQLITE_BUSY_TIMEOUT_MS = 10_000
_migrate_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


def _sqlite_begin(conn) -> None:
    # Take the write lock at BEGIN, so two writers never deadlock upgrading read locks.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(settings: RegistrySettings) -> Engine:
    """An engine for the settings' database; the SQLite data directory is created on first use."""
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.url, connect_args={"check_same_thread": False,
                                                           "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (pysqlite's own is broken for DDL)

        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(settings.url, pool_pre_ping=True)


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("leukos.registry").joinpath("migrations")))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    with _migrate_lock:
        command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with _migrate_lock:
        command.downgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def open_database(settings: RegistrySettings) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory, with the schema migrated to the newest revision."""
    engine = make_engine(settings)
    upgrade(engine)
    return engine, sessionmaker(engine, expire_on_commit=False)
