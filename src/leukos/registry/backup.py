"""Export (JSON, pseudonymised by default) and consistent backups of the registry."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import select

from leukos.errors import ErrorDetail, LeukosUserError
from leukos.registry.models import Base
from leukos.registry.store import Registry

__all__ = ["export_json", "backup"]


def export_json(reg: Registry, out: Path, *, with_identifiers: bool = False) -> int:
    """Every table as ``{table: [rows]}`` in one read transaction; returns the number of rows."""
    data: dict[str, list] = {}
    n = 0
    with reg.engine.connect() as conn, conn.begin():
        for table in Base.metadata.sorted_tables:
            rows = [dict(r._mapping) for r in conn.execute(select(table))]
            if table.name == "patients" and not with_identifiers:
                for r in rows:
                    r["mrn"] = None
            data[table.name] = rows
            n += len(rows)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(data, default=str, ensure_ascii=False, indent=1), "utf-8")
    tmp.replace(out)
    return n


def backup(reg: Registry, out: Path) -> str:
    """SQLite: the online backup API (consistent while writers continue). PostgreSQL: pg_dump."""
    url = reg.engine.url
    if url.get_backend_name() == "sqlite":
        import sqlite3

        src = sqlite3.connect(url.database)
        dst = sqlite3.connect(out)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return f"SQLite backup written to {out}."
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise LeukosUserError(ErrorDetail("pg_dump", None, "the PostgreSQL client tools on the PATH",
                                          "install postgresql-client, or use leukos registry export"))
    import os

    # the password goes through the environment, never on the command line (visible to ps)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    dbname = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    with out.open("wb") as fh:
        subprocess.run([pg_dump, "--format=custom", "--dbname", dbname], stdout=fh, check=True, env=env)
    return f"pg_dump (custom format) written to {out}."
