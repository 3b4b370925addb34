"""Engines the screening expression runs on: DuckDB (default, embedded) and Spark (local or cluster).

Both are reached through ibis, so the episode logic in :mod:`leukos.screening.episodes` is one
expression for both. This module only connects, reads files and reports progress.

Spark binds loopback only unless a master is given (``SPARK_LOCAL_IP=127.0.0.1``,
``spark.driver.bindAddress=127.0.0.1``, no UI). A cluster is reached with ``--spark-master``
(``spark://HOST:7077``, ``yarn``, ...): see docs/screening.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leukos.errors import ErrorDetail, LeukosUserError

__all__ = ["Backend", "connect_duckdb", "connect_spark", "spark_session"]

ENGINES = ("duckdb", "spark")


@dataclass
class Backend:
    """An ibis connection plus how to read files on it."""

    name: str
    con: Any
    _progress: Callable[[], float] | None = field(default=None, repr=False)

    def read(self, path: Path, *, table_name: str | None = None):
        """Register a CSV or Parquet file (or folder of Parquet files) as an ibis table.

        CSV columns are read as text so that a stray word in a numeric column cannot stop the
        run: the sources cast them and count what does not parse.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        try:
            if path.is_dir() or suffix == ".parquet":
                target = str(path / "*.parquet") if path.is_dir() and self.name == "duckdb" else str(path)
                table = self.con.read_parquet(target, table_name=table_name)
            elif suffix in (".csv", ".tsv", ".txt", ".gz"):
                if self.name == "duckdb":
                    table = self.con.read_csv(str(path), table_name=table_name, all_varchar=True, header=True)
                else:
                    table = self.con.read_csv(str(path), table_name=table_name, inferSchema=False, header=True)
            else:
                table = None
        except Exception as exc:  # noqa: BLE001 - any engine's read error: the file is not a table we can read
            raise LeukosUserError(ErrorDetail(
                "INPUT", path.name, "a table: CSV with a header row (comma, semicolon, tab or | delimited) "
                "or Parquet", f"export the table again as CSV or Parquet ({_first_line(exc)})")) from None
        if table is None:
            raise LeukosUserError(ErrorDetail("INPUT", str(path), "a .csv or .parquet file",
                                              "export the table as CSV (with a header row) or Parquet"))
        if len(table.columns) < 2:
            raise LeukosUserError(ErrorDetail(
                "INPUT", path.name, "a table with several columns",
                f"only one column was found ({table.columns[0][:60]!r}): check the delimiter and the header row"))
        return table

    def temp_table(self, name: str, data):
        """Register a small pyarrow table as a temporary table (DuckDB) or temp view (Spark)."""
        if self.name == "spark":
            session = self.con._session
            import pyarrow as pa

            ddl = ", ".join(f"{f.name} {'double' if pa.types.is_floating(f.type) else 'string'}" for f in data.schema)
            session.createDataFrame(data.to_pandas(), schema=ddl).createOrReplaceTempView(name)
            return self.con.table(name)
        return self.con.create_table(name, data, temp=True)

    def rows(self, expr) -> list[dict]:
        """The rows of a (small) ibis table expression as dicts.

        On DuckDB the compiled SQL is run on the connection and fetched as Arrow: ibis's own
        ``to_pyarrow`` would import pandas (a third of a second of a command-line run) for nothing.
        """
        if self.name == "duckdb":
            return self.con.con.execute(str(self.con.compile(expr))).fetch_arrow_table().to_pylist()
        return expr.to_pyarrow().to_pylist()

    def scalar(self, expr):
        """The value of an ibis scalar expression (as :meth:`rows`, without pandas on DuckDB)."""
        if self.name == "duckdb":
            return self.con.con.execute(str(self.con.compile(expr))).fetchone()[0]
        return expr.to_pyarrow().as_py()

    def progress(self) -> float | None:
        """Percentage done of the running query (DuckDB only), or None."""
        return self._progress() if self._progress else None

    def close(self) -> None:
        if self.name == "duckdb":
            self.con.disconnect()


def connect_duckdb(database: str | Path | None = None, *, memory_limit: str | None = None,
                   temp_directory: str | Path | None = None, threads: int | None = None,
                   read_only: bool = True) -> Backend:
    """An in-process DuckDB: spills to ``temp_directory`` above ``memory_limit``."""
    import ibis

    if database is not None:
        con = ibis.duckdb.connect(str(database), read_only=read_only)
    else:
        con = ibis.duckdb.connect()
    raw = con.con
    settings = [("--memory-limit", memory_limit, f"SET memory_limit = '{_sql_text(str(memory_limit))}'",
                 "a size such as 2GB or 500MB", "give the memory DuckDB may use, e.g. --memory-limit 2GB"),
                ("--temp-directory", temp_directory, f"SET temp_directory = '{_sql_text(str(temp_directory))}'",
                 "a folder DuckDB can write to", "name a writable folder with room to spill"),
                ("--threads", threads, f"SET threads = {int(threads) if threads else 0}", "a number of threads, 1 or more",
                 "give the number of cores to use")]
    import duckdb

    for option, value, sql, expected, fix in settings:
        if not value:
            continue
        try:
            raw.execute(sql)
        except duckdb.Error as exc:  # DuckDB's refusal (e.g. 'abc' as a memory limit), named by the option
            raise LeukosUserError(ErrorDetail(option, str(value), expected, f"{fix} (DuckDB: {str(exc)[:120]})"),
                                  title="The screening options cannot be used") from None
    raw.execute("SET enable_progress_bar = true")
    raw.execute("SET enable_progress_bar_print = false")
    raw.execute("SET preserve_insertion_order = false")  # lets large scans stream and spill

    def progress() -> float | None:
        try:
            value = raw.query_progress()
        except Exception:  # noqa: BLE001 - progress is best effort; a failed poll must not stop the run
            return None
        return None if value is None or value < 0 else float(value)

    return Backend("duckdb", con, progress)


_spark_lock = threading.Lock()


def spark_session(master: str | None = None, *, app_name: str = "leukos-screen"):
    """Get or create a Spark session (local[2] on loopback unless a master is given)."""
    from pyspark.sql import SparkSession

    with _spark_lock:
        master = master or os.environ.get("LEUKOS_SPARK_MASTER") or "local[2]"
        builder = SparkSession.builder.appName(app_name).master(master)
        if _loopback(master):
            # local mode, or a cluster on this machine: the driver listens on loopback only.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            builder = (builder.config("spark.driver.bindAddress", "127.0.0.1")
                       .config("spark.driver.host", "127.0.0.1"))
        partitions = "4" if master.startswith("local") else "200"
        builder = (builder.config("spark.ui.enabled", "false")
                   .config("spark.sql.session.timeZone", "UTC")
                   .config("spark.sql.shuffle.partitions", os.environ.get("LEUKOS_SPARK_PARTITIONS", partitions))
                   .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                   .config("spark.sql.ansi.enabled", "false"))
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # noqa: BLE001 - Spark/Java start-up failures have no common base class
            raise LeukosUserError(ErrorDetail(
                "--spark-master", master, "a Spark master that answers: spark://HOST:PORT, or local[N]",
                f"check the URL and that the cluster is running ({type(exc).__name__})"),
                title="Spark could not be started") from None
        session.sparkContext.setLogLevel("ERROR")
        return session


def _loopback(master: str) -> bool:
    """Local mode or a standalone master on this machine (spark://127.0.0.1:PORT, spark://localhost:PORT)."""
    if master.startswith("local"):
        return True
    host = master.split("://", 1)[-1].split(":", 1)[0]
    return host in ("127.0.0.1", "localhost")


def connect_spark(session=None, *, master: str | None = None) -> Backend:
    """An ibis connection on a Spark session (created on loopback if not given)."""
    import ibis

    session = session or spark_session(master)
    return Backend("spark", ibis.pyspark.connect(session))


def _first_line(exc: Exception) -> str:
    """The engine's message, first line only and without the file's contents."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _sql_text(value: str) -> str:
    return value.replace("'", "''")
