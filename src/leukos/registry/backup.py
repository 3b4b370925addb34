"""Export (JSON, pseudonymised by default) and consistent backups of the registry.

Every file is written as the registry's own data: into a temporary file created exclusively (never
through a symlink), owner-only (0600: it holds patient data), then moved into place. An existing
file is replaced only when the caller says so (``overwrite``); a symlink or a folder is never
written through.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import select

from leukos.errors import ErrorDetail, LeukosUserError
from leukos.registry.db import SQLITE_HEADER
from leukos.registry.models import Base
from leukos.registry.store import Registry

__all__ = ["export_json", "backup", "backup_before_downgrade", "write_private", "IDENTIFIER_COLUMNS"]

# Columns that link a record to a person or to the hospital's record of them: left out of the default export.
IDENTIFIER_COLUMNS = {"patients": ("mrn", "fhir_patient_id")}


def _refuse(option: str, out: Path, expected: str, fix: str) -> LeukosUserError:
    return LeukosUserError(ErrorDetail(option, str(out), expected, fix), title="The output file cannot be written")


def check_output(out: Path, *, overwrite: bool, option: str = "--out",
                 may_replace: Callable[[Path], bool] | None = None) -> None:
    """Refuse a symlink, a folder, a missing folder, or (without ``overwrite``) an existing file."""
    try:
        st = out.lstat()
    except FileNotFoundError:
        st = None
    if st is not None:
        import stat

        if stat.S_ISLNK(st.st_mode):
            raise _refuse(option, out, "a new file path, not a symbolic link (it is never written through)",
                          "name the real file, or another path")
        if stat.S_ISDIR(st.st_mode):
            raise _refuse(option, out, "a file path, not a folder", "name a new file inside the folder, not the folder")
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(option, out, "a regular file path", "name another path")
        if not overwrite:
            raise _refuse(option, out, "a file that does not exist yet (nothing was written)",
                          "name a new file, or add --overwrite to replace it")
        if may_replace is not None and not may_replace(out):
            raise _refuse(option, out, "an earlier output of this command (this file is something else; it is kept)",
                          "name another file")
    parent = out.absolute().parent
    if not parent.is_dir():
        raise _refuse(option, out, "a file in an existing folder", f"create {parent} first, or name another folder")


@contextlib.contextmanager
def write_private(out: Path, *, overwrite: bool, option: str = "--out",
                  may_replace: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yields a fresh owner-only temporary path beside ``out`` to fill; on success moves it to ``out``.

    The temporary file is created exclusively (``mkstemp``: no symlink, no existing file is followed) and
    removed on any failure, so nothing is left half-written. Without ``overwrite`` the move is a hard
    link, which fails rather than replace a file created meanwhile."""
    check_output(out, overwrite=overwrite, option=option, may_replace=may_replace)
    parent = out.absolute().parent
    try:
        fd, name = tempfile.mkstemp(dir=parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise _refuse(option, out, "a folder leukos may write", f"check the folder's permissions ({exc.strerror})") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, out)
        else:
            try:
                os.link(tmp, out)
            except FileExistsError:
                raise _refuse(option, out, "a file that does not exist yet (another program created it meanwhile)",
                              "name a new file, or add --overwrite to replace it") from None
            except OSError:  # a file system without hard links: the check above is all there is
                if os.path.lexists(out):
                    raise _refuse(option, out, "a file that does not exist yet", "name a new file") from None
                os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def export_json(reg: Registry, out: Path, *, with_identifiers: bool = False, overwrite: bool = False) -> int:
    """Every table as ``{table: [rows]}`` in one read transaction; returns the number of rows.

    Pseudonymised unless ``with_identifiers``: the MRN and the FHIR Patient id (a link back to the
    hospital's record) are left out of each patient."""
    check_output(out, overwrite=overwrite)  # before reading the database
    data: dict[str, list] = {}
    n = 0
    with reg.engine.connect() as conn, conn.begin():
        for table in Base.metadata.sorted_tables:
            rows = [dict(r._mapping) for r in conn.execute(select(table))]
            if not with_identifiers:
                for r in rows:
                    for col in IDENTIFIER_COLUMNS.get(table.name, ()):
                        r.pop(col, None)
            data[table.name] = rows
            n += len(rows)
    text = json.dumps(data, default=str, ensure_ascii=False, indent=1)
    with write_private(out, overwrite=overwrite) as tmp:
        tmp.write_text(text, "utf-8")
    return n


def _is_sqlite_file(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def _sqlite_copy(src_path: str, dst: Path) -> None:
    import sqlite3

    src = sqlite3.connect(src_path)
    dst_con = sqlite3.connect(dst)
    try:
        src.backup(dst_con)
    finally:
        dst_con.close()
        src.close()


def backup(reg: Registry, out: Path, *, overwrite: bool = False) -> str:
    """SQLite: the online backup API (consistent while writers continue). PostgreSQL: pg_dump.

    Refuses an existing ``out`` unless ``overwrite``; even then only an earlier SQLite backup is replaced
    (never a document that happens to have the name)."""
    url = reg.engine.url
    if url.get_backend_name() == "sqlite":
        with write_private(out, overwrite=overwrite, may_replace=_is_sqlite_file) as tmp:
            _sqlite_copy(str(Path(url.database).absolute()), tmp)
        return f"SQLite backup written to {out} (owner-only)."
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise LeukosUserError(ErrorDetail("pg_dump", None, "the PostgreSQL client tools on the PATH",
                                          "install postgresql-client, or use leukos registry export"))

    def is_dump(p: Path) -> bool:
        with p.open("rb") as fh:
            return fh.read(5) == b"PGDMP"

    # the password goes through the environment, never on the command line (visible to ps)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    dbname = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    with write_private(out, overwrite=overwrite, may_replace=is_dump) as tmp:
        with tmp.open("wb") as fh:
            done = subprocess.run([pg_dump, "--format=custom", "--dbname", dbname], stdout=fh,
                                  stderr=subprocess.PIPE, env=env)
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise LeukosUserError(ErrorDetail("pg_dump", f"exit status {done.returncode}", "a completed dump",
                                              f"check the database and its permissions ({why[-1][:200] if why else ''}); "
                                              "nothing was written"), title="The backup failed")
    return f"pg_dump (custom format) written to {out} (owner-only)."


def backup_before_downgrade(database: Path, current: str | None) -> Path:
    """A SQLite backup beside the database file, named by its revision and the time, before a downgrade."""
    src = database.absolute()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    out = src.with_name(f"{src.name}.before-downgrade-from-{current or 'base'}-{stamp}.sqlite3")
    with write_private(out, overwrite=False, option="automatic backup") as tmp:
        _sqlite_copy(str(src), tmp)
    return out
