"""Engine, connection pragmas and schema migrations of the registry.

SQLite: WAL journal (readers do not block the writer), ``synchronous=FULL`` (an acknowledged
commit survives a killed process and a power cut), foreign keys on, a busy timeout so
concurrent writers queue instead of failing. PostgreSQL: psycopg 3.

The schema is created on first use by running the Alembic migrations shipped in the package
(``leukos/registry/migrations``), never by ``create_all``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from importlib import resources

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from leukos.errors import ErrorDetail, LeukosUserError
from leukos.registry.settings import RegistrySettings

_log = logging.getLogger(__name__)

__all__ = ["make_engine", "alembic_config", "upgrade", "downgrade", "current_revision", "open_database",
           "rows_a_downgrade_drops", "DOWNGRADE_DROPS",
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


SQLITE_HEADER = b"SQLite format 3\x00"


def _where(settings: RegistrySettings) -> str:
    return "LEUKOS_DATABASE_URL" if settings.database_url else "LEUKOS_DATA_DIR"


def _db_error(settings: RegistrySettings, value: str, expected: str, fix: str) -> LeukosUserError:
    return LeukosUserError(ErrorDetail(_where(settings), value, expected, fix),
                           title="The registry database cannot be opened")


def _check_sqlite_file(settings: RegistrySettings) -> None:
    """The SQLite file's folder exists (created for LEUKOS_DATA_DIR), and the file, if there, is a database."""
    path = settings.sqlite_path
    assert path is not None  # in-memory URLs are refused by the settings
    if not settings.database_url:
        try:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # it will hold identifiers
        except (FileExistsError, NotADirectoryError):
            raise _db_error(settings, str(settings.data_dir), "a folder (the registry's SQLite file is kept in it)",
                            "name a folder, or a path that does not exist yet (it is created)") from None
        except OSError as exc:
            raise _db_error(settings, str(settings.data_dir), "a folder leukos may create and write",
                            f"check the path and its permissions ({exc.strerror})") from None
    elif not path.absolute().parent.is_dir():
        raise _db_error(settings, settings.describe(), "a SQLite file in an existing folder",
                        "create the folder first, or correct the path in the URL")
    if path.is_dir():
        raise _db_error(settings, settings.describe(), "a SQLite database file, not a folder",
                        "name the database file (e.g. …/registry.sqlite3)")
    if path.is_file():
        try:
            with path.open("rb") as fh:
                head = fh.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise _db_error(settings, settings.describe(), "a SQLite database file leukos may read",
                            f"check the file's permissions ({exc.strerror})") from None
        if head and head != SQLITE_HEADER:
            raise _db_error(settings, settings.describe(), "a SQLite database file (this file is something else)",
                            "name the registry's database file; nothing was written to this one")
        _warn_if_shared(path)
    elif not os.path.lexists(path):
        # created owner-only (it will hold MRNs; SQLite gives its -wal and -shm files the same mode)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))


def _warn_if_shared(path) -> None:
    """Say so when the registry file may be read by other users of the machine.

    leukos creates the file owner-only (0600), but a file made by an older version, copied in, or
    restored from a backup may be readable by the group or by everyone, and it holds MRNs. The
    operator may have a reason (a backup user in the group), so the mode is not changed behind their
    back: a warning names the file, its mode and the command that fixes it, each time it is opened."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        _log.warning("The registry database %s can be read or written by other users of this machine (mode %s); "
                     "it holds medical record numbers. Make it owner-only: chmod 600 %s", path, oct(mode)[2:], path)


def make_engine(settings: RegistrySettings) -> Engine:
    """An engine for the settings' database; the SQLite data directory is created on first use.

    SQL parameters (patient data, the MRN) are never put into error messages or logs (``hide_parameters``)."""
    if settings.is_sqlite:
        _check_sqlite_file(settings)
        engine = create_engine(settings.url, hide_parameters=True,
                               connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (pysqlite's own is broken for DDL)

        event.listen(engine, "begin", _sqlite_begin)
        return engine
    try:
        return create_engine(settings.url, pool_pre_ping=True, hide_parameters=True)
    except (ImportError, NoSuchModuleError, ArgumentError):
        raise _db_error(settings, settings.url.split("://")[0] + "://…",
                        "postgresql+psycopg://… (the psycopg 3 driver installed with leukos)",
                        "write the URL as postgresql+psycopg://user@host/leukos") from None


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("leukos.registry").joinpath("migrations")))
    cfg.attributes["engine"] = engine
    return cfg


# The tables each revision's downgrade drops, with every row in them. Checked against the migrations by
# tests/registry/test_migrations.py, so a new migration must add its entry; a revision missing here is
# taken to drop every table.
DOWNGRADE_DROPS: dict[str, tuple[str, ...]] = {
    "0004": ("registry_changes",),  # the history of who changed what
    "0003": (),  # the unique FHIR id index becomes a plain index again
    "0002": ("treatments",),
    "0001": ("patients", "episodes", "lab_results", "assessments", "plans", "procedures", "adverse_events",
             "cds_feedback"),
}


def _revision_error(revision: str, exc: Exception) -> LeukosUserError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return LeukosUserError(ErrorDetail("--revision", revision, "head, base, a revision id of the registry "
                                       f"({', '.join(DOWNGRADE_DROPS)}) or a relative step such as -1, "
                                       "reachable from the current revision",
                                       f"check the revision ({first[:120]})"),
                           title="The registry schema cannot be migrated to this revision")


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    with _migrate_lock:
        try:
            command.upgrade(alembic_config(engine), revision)
        except (CommandError, RevisionError) as exc:
            raise _revision_error(revision, exc) from None


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    with _migrate_lock:
        try:
            command.downgrade(alembic_config(engine), revision)
        except (CommandError, RevisionError) as exc:
            raise _revision_error(revision, exc) from None


def rows_a_downgrade_drops(engine: Engine, revision: str) -> dict[str, int]:
    """The tables that downgrading to ``revision`` would drop, with their row counts (nothing is changed)."""
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError
    from sqlalchemy import func, inspect, select, table

    from leukos.registry.models import Base

    current = current_revision(engine)
    if current is None:
        return {}
    try:
        undone = [sc.revision for sc in ScriptDirectory.from_config(alembic_config(engine))
                  .iterate_revisions(current, revision)]
    except (CommandError, RevisionError) as exc:
        raise _revision_error(revision, exc) from None
    every = tuple(t.name for t in Base.metadata.sorted_tables)
    dropped = {t for rev in undone for t in DOWNGRADE_DROPS.get(rev, every)}
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {t: conn.execute(select(func.count()).select_from(table(t))).scalar_one()
                for t in sorted(dropped & present)}


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def open_database(settings: RegistrySettings) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory, with the schema migrated to the newest revision."""
    engine = make_engine(settings)
    upgrade(engine)
    return engine, sessionmaker(engine, expire_on_commit=False)
