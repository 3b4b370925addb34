"""Where the registry keeps its data: ``LEUKOS_DATABASE_URL`` or a SQLite file under ``LEUKOS_DATA_DIR``.

Built by the caller (CLI callback, app factory, test), never at import time .
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from leukos.errors import ErrorDetail, LeukosUserError

__all__ = ["RegistrySettings", "DEFAULT_DATA_DIR", "SQLITE_FILE"]

DEFAULT_DATA_DIR = "leukos-data"   # beside the working directory
SQLITE_FILE = "registry.sqlite3"
_URL_FIX = "set e.g. LEUKOS_DATABASE_URL=postgresql+psycopg://user@host/leukos or sqlite:////path/registry.sqlite3, " \
           "or unset it for SQLite in LEUKOS_DATA_DIR"


def _url_error(value: str, expected: str, fix: str = _URL_FIX) -> LeukosUserError:
    return LeukosUserError(ErrorDetail("LEUKOS_DATABASE_URL", value, expected, fix),
                           title="The registry database setting cannot be used")


def _check_url(url: str) -> None:
    """Refuse a URL that cannot be parsed, names another database system, or keeps SQLite in memory.

    The URL itself is never shown (it may hold a password): only its scheme."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    scheme = url.split("://")[0] + "://…" if "://" in url else "(not shown: it may hold a password)"
    try:
        u = make_url(url)
    except (ArgumentError, ValueError):
        raise _url_error(scheme, "a database URL of the form dialect://…, e.g. sqlite:////path/registry.sqlite3") from None
    if u.get_backend_name() not in ("sqlite", "postgresql"):
        raise _url_error(scheme, "a sqlite:/// or postgresql+psycopg:// URL")
    if u.get_backend_name() == "sqlite" and _sqlite_in_memory(u.database, dict(u.query)):
        raise _url_error(url, "a SQLite database in a file (an in-memory database "
                         "forgets every record when the command ends)",
                         "name a file, e.g. LEUKOS_DATABASE_URL=sqlite:////var/lib/leukos/registry.sqlite3, "
                         "or unset it for SQLite in LEUKOS_DATA_DIR")


def _sqlite_in_memory(database: str | None, query: Mapping[str, object]) -> bool:
    return (not database or database == ":memory:" or database.startswith("file::memory:")
            or query.get("mode") == "memory")


@dataclass(frozen=True)
class RegistrySettings:
    """``database_url`` (SQLAlchemy URL) wins; otherwise SQLite at ``data_dir/registry.sqlite3``."""

    data_dir: Path
    database_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], cwd: Path | None = None) -> RegistrySettings:
        url = env.get("LEUKOS_DATABASE_URL") or None
        if url is not None:
            _check_url(url)
        data_dir = Path(env.get("LEUKOS_DATA_DIR") or (cwd or Path.cwd()) / DEFAULT_DATA_DIR)
        return cls(data_dir=data_dir, database_url=url)

    @property
    def url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / SQLITE_FILE).resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file actually used (``LEUKOS_DATABASE_URL`` when set, else under ``data_dir``); None
        for PostgreSQL or an in-memory database."""
        if not self.is_sqlite:
            return None
        if not self.database_url:
            return self.data_dir / SQLITE_FILE
        from sqlalchemy.engine import make_url

        u = make_url(self.database_url)
        if _sqlite_in_memory(u.database, dict(u.query)):
            return None
        db = u.database or ""
        if db.startswith("file:"):  # sqlite:///file:path?uri=true
            db = db[len("file:"):]
        return Path(db)

    def describe(self) -> str:
        """The database for humans and logs: the one actually used; no password, no query string."""
        if self.is_sqlite:
            path = self.sqlite_path
            return f"SQLite {path.absolute()}" if path is not None else "SQLite in memory"
        from sqlalchemy.engine import make_url

        u = make_url(self.url)
        return f"PostgreSQL {u.host or 'local socket'}:{u.port or 5432}/{u.database}"
