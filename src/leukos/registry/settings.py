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


@dataclass(frozen=True)
class RegistrySettings:
    """``database_url`` (SQLAlchemy URL) wins; otherwise SQLite at ``data_dir/registry.sqlite3``."""

    data_dir: Path
    database_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], cwd: Path | None = None) -> RegistrySettings:
        url = env.get("LEUKOS_DATABASE_URL") or None
        if url is not None and not url.startswith(("sqlite", "postgresql")):
            raise LeukosUserError(ErrorDetail(
                "LEUKOS_DATABASE_URL", url.split("://")[0] + "://…", "a sqlite:/// or postgresql+psycopg:// URL",
                "set e.g. LEUKOS_DATABASE_URL=postgresql+psycopg://user@host/leukos, or unset it for SQLite"))
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

    def describe(self) -> str:
        """The database for humans and logs: no password, no query string."""
        if self.is_sqlite:
            return f"SQLite {self.data_dir / SQLITE_FILE}"
        from sqlalchemy.engine import make_url

        u = make_url(self.url)
        return f"PostgreSQL {u.host or 'local socket'}:{u.port or 5432}/{u.database}"
