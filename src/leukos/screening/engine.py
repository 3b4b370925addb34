"""Run a screening: read a source, clean, find episodes, write episodes.parquet + summary.json + report.html.

The same expressions (:mod:`leukos.screening.episodes`) run on DuckDB (compiled to SQL once,
:mod:`leukos.screening.plan`) or Spark (through ibis); this module only orchestrates. Memory stays bounded: the large lab table is scanned once, filtered to the
analytes screening uses and materialised by the engine (DuckDB spills to ``temp_directory``
above ``memory_limit``); only small results (unit pairs, counts, episodes) reach Python.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from leukos import __version__
from leukos.errors import ErrorDetail, LeukosUserError
from leukos.knowledge import KnowledgeBase, load_knowledge
from leukos.screening.backends import ENGINES, Backend, connect_duckdb, connect_spark
from leukos.screening.counts import counts_expr, counts_from_rows
from leukos.screening.episodes import (
    EXCLUSION_REASONS,
    NOT_ASSESSED,
    ScreenParams,
    clean_observations,
    episodes,
    screened_persons,
)
from leukos.screening.factors import factor_table, unit_factors
from leukos.screening.sources import read_source

__all__ = ["ScreenOptions", "ScreenResult", "screen", "FORMATS"]

FORMATS = ("omop", "mimic", "table")
# A software bound (not clinical): DuckDB starts one thread per unit asked for, and 100,000 of them
# stalled the run; no machine leukos screens on has more cores than this.
MAX_THREADS = 1024


@dataclass(frozen=True)
class ScreenOptions:
    """How to run a screening (not clinical parameters: those come from the knowledge base)."""

    fmt: str = "omop"
    engine: str = "duckdb"
    gap_hours: float | None = None
    columns: dict[str, str] = field(default_factory=dict)
    memory_limit: str | None = None
    temp_directory: str | None = None
    threads: int | None = None
    spark_master: str | None = None
    default_units: dict[str, str] = field(default_factory=dict)  # analyte -> unit of its unit-less results
    now: datetime | None = None  # results after this are "future"; default: the time of the run (UTC)
    report: bool = True

    def __post_init__(self) -> None:
        problems = []
        gap = self.gap_hours
        if gap is not None and (isinstance(gap, bool) or not isinstance(gap, (int, float))
                                or not math.isfinite(gap) or gap <= 0):
            # NaN compares false with every gap (no episode would ever end), infinity never ends one
            problems.append(ErrorDetail("--gap-hours", gap, "a finite number of hours above 0",
                                        "give e.g. --gap-hours 72, or leave it out for the ruleset's value"))
        if self.threads is not None and not (1 <= self.threads <= MAX_THREADS):
            problems.append(ErrorDetail("--threads", self.threads, f"1-{MAX_THREADS}",
                                        "give the number of cores to use, or leave it out for all of them"))
        if problems:
            raise LeukosUserError(problems, title="The screening options cannot be used")


@dataclass(frozen=True)
class ScreenResult:
    summary: dict[str, Any]
    episodes: Any  # pyarrow.Table
    episodes_path: Path
    summary_path: Path
    report_path: Path | None


class _Poller:
    """Polls the engine's progress from a thread and hands it to a callback.

    The callback gets (stage, percent or None, rows per second or None); the rate is known for
    the scan, whose row count is known before it starts.
    """

    def __init__(self, backend: Backend, callback: Callable[..., None] | None, stage: str,
                 rows: int | None = None):
        self.backend, self.callback, self.stage, self.rows = backend, callback, stage, rows
        self._stop = threading.Event()
        self._thread = None
        self._t0 = 0.0

    def _rate(self, pct: float) -> float | None:
        elapsed = time.perf_counter() - self._t0
        if not self.rows or elapsed <= 0:
            return None
        return self.rows * pct / 100.0 / elapsed

    def __enter__(self):
        self._t0 = time.perf_counter()
        if self.callback:
            self.callback(self.stage, None, None)
            if self.backend.name == "duckdb":
                self._thread = threading.Thread(target=self._run, daemon=True)
                self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.2):
            pct = self.backend.progress()
            if pct is not None:
                self.callback(self.stage, pct, self._rate(pct))

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self.callback and exc[0] is None:
            self.callback(self.stage, 100.0, self._rate(100.0))


def _backend_for(options: ScreenOptions, input_path: Path, spark_session=None) -> Backend:
    if options.engine not in ENGINES:
        raise LeukosUserError(ErrorDetail("--engine", options.engine, "duckdb or spark", "choose one of them"))
    if options.engine == "spark":
        return connect_spark(spark_session, master=options.spark_master)
    db = input_path if input_path.is_file() and input_path.suffix.lower() in (".duckdb", ".db", ".ddb") else None
    return connect_duckdb(db, memory_limit=options.memory_limit, temp_directory=options.temp_directory,
                          threads=options.threads)


def screen(input_path: str | Path, out_dir: str | Path, *, options: ScreenOptions = ScreenOptions(),
           kb: KnowledgeBase | None = None, backend: Backend | None = None, spark_session=None,
           progress: Callable[[str, float | None], None] | None = None) -> ScreenResult:
    """Screen a lab source for hyperleukocytosis episodes.

    Parameters
    ----------
    input_path
        OMOP folder or DuckDB database, MIMIC folder or labevents file, or a long table.
    out_dir
        Where ``episodes.parquet``, ``summary.json`` and ``report.html`` are written.
    options
        Format, engine and resource settings.
    backend, spark_session
        An existing engine connection (tests reuse one Spark session).
    progress
        Called with (stage, percent or None) while the engine works.

    Raises
    ------
    LeukosUserError
        Missing tables/columns, unknown format or engine.
    """
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    kb = kb or load_knowledge()
    input_path = Path(input_path)
    if options.fmt not in FORMATS:
        raise LeukosUserError(ErrorDetail("--format", options.fmt, ", ".join(FORMATS), "choose one of them"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = options.now or datetime.now(UTC).replace(tzinfo=None)
    # The parameters need the UCUM registry (thresholds printed in mg/dL), which takes a moment
    # to build: the engines build it in a thread while they scan (the engine releases the GIL).
    make_params = partial(ScreenParams.from_kb, kb, now=now, gap_hours=options.gap_hours)
    own_backend = backend is None
    backend = backend or _backend_for(options, input_path, spark_session)
    stages: dict[str, float] = {"start": time.perf_counter() - t0}
    lap = _laps(stages)
    try:
        src = read_source(backend, input_path, options.fmt, kb, columns=options.columns)
        rows_read = int(backend.scalar(src.rows_read))  # Parquet/DuckDB: from metadata
        lap("open")
        run = _run_duckdb if backend.name == "duckdb" else _run_ibis
        params, factors, (counts, persons, unknown), ep = run(backend, src, kb, options, make_params, progress,
                                                              rows_read, lap)
        ep = _naive_utc(ep)
        ep = ep.replace_schema_metadata({"leukos_version": __version__, "ruleset_version": kb.ruleset_version})
        ep_path = out / "episodes.parquet"
        pq.write_table(ep, ep_path)
        lap("write")
        seconds = time.perf_counter() - t0
        summary = _summary(kb, params, options, input_path, backend.name, rows_read, persons, counts, unknown,
                           factors, ep, src, seconds)
        summary["stage_seconds"] = {k: round(v, 3) for k, v in stages.items()}
        summary_path = out / "summary.json"
        summary_path.write_text(json.dumps(summary, indent=2, default=str) + "\n", "utf-8")
        report_path = None
        if options.report:
            from leukos.screening.report import write_report

            report_path = write_report(out / "report.html", summary, ep)
        return ScreenResult(summary=summary, episodes=ep, episodes_path=ep_path,
                            summary_path=summary_path, report_path=report_path)
    finally:
        if own_backend:
            backend.close()


def _laps(stages: dict[str, float]) -> Callable[[str], None]:
    """A stopwatch: ``lap(name)`` adds the time since the previous lap to ``stages[name]``."""
    last = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        stages[name] = stages.get(name, 0.0) + now - last[0]
        last[0] = now

    return lap


def _in_thread(fn, name: str):
    """Run ``fn`` in a worker thread (the caller goes on); returns its future."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    future = pool.submit(fn)
    pool.shutdown(wait=False)
    return future


def _run_duckdb(backend, src, kb, options, make_params, progress, rows_read, lap):
    """The DuckDB plan (:mod:`leukos.screening.plan`): the shared expressions compiled to SQL once,
    in a thread while DuckDB scans; the lab table read once into a temp table; SQL run directly.

    Returns (params, unit factors, (counts, persons, unknown units), episodes as pyarrow).
    """
    from leukos.screening.factors import factor_rows
    from leukos.screening.plan import FACTOR_SCHEMA, compile_plan, table_names

    raw = backend.con.con
    names = table_names()
    obs_table, factor_name, valid_table = (f'"{n}"' for n in names)
    obs_expr = src.obs
    obs_sql = str(backend.con.compile(obs_expr))
    obs_schema = obs_expr.schema()

    def parameters_and_plan():  # Python work (UCUM registry, ibis compilation) while DuckDB scans
        params = make_params()
        return params, compile_plan(backend.con, names, obs_schema, params, src.events, births=src.births)

    plan_future = _in_thread(parameters_and_plan, "leukos-compile")
    created: list[str] = []
    try:
        # The plan: the large table is read once, filtered in the scan to the screening analytes
        # and the columns screening uses; everything after works on that copy, and the episode
        # logic only on the persons with a count above the threshold (a semi-join).
        with _Poller(backend, progress, "scan", rows_read):
            raw.execute(f"CREATE TEMP TABLE {obs_table} AS {obs_sql}")
            created.append(obs_table)
        lap("scan")
        with _Poller(backend, progress, "units", None):
            pairs = raw.execute(f"SELECT DISTINCT analyte, unit FROM {obs_table}").fetchall()
        factors = unit_factors(pairs, kb, default_units=options.default_units)
        # A handful of rows, written as SQL literals: an Arrow array or bound parameters would make
        # pyarrow or DuckDB import pandas, a third of a second of a command-line run, for nothing.
        columns = ", ".join(f"{k} {_DUCK_TYPES[v]}" for k, v in FACTOR_SCHEMA.items())
        raw.execute(f"CREATE TEMP TABLE {factor_name} ({columns})")
        created.append(factor_name)
        rows = factor_rows(factors, kb)
        if rows:
            raw.execute(f"INSERT INTO {factor_name} VALUES " + ", ".join(
                "(" + ", ".join(_sql_literal(v) for v in row) + ")" for row in rows))
        lap("units")
        params, plan = plan_future.result()
        lap("compile_wait")  # compilation not hidden by the scan
        with _Poller(backend, progress, "clean", None):
            counts = counts_from_rows(raw.execute(plan.counts_sql).fetch_arrow_table().to_pylist())
        lap("counts")
        with _Poller(backend, progress, "episodes", None):
            raw.execute(f"CREATE TEMP TABLE {valid_table} AS {plan.valid_sql}")
            created.append(valid_table)
            for name, sql in plan.stages:
                raw.execute(f'CREATE TEMP TABLE "{name}" AS {sql}')
                created.append(f'"{name}"')
            ep = raw.execute(plan.episodes_sql).fetch_arrow_table().cast(plan.episodes_schema)
        lap("episodes")
        return params, factors, counts, ep
    finally:
        for name in reversed(created):
            raw.execute(f"DROP TABLE IF EXISTS {name}")


_DUCK_TYPES = {"string": "VARCHAR", "float64": "DOUBLE"}


def _sql_literal(value: str | float) -> str:
    """A text or number as a DuckDB literal (text from the input, e.g. a unit, is quoted safely)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def _run_ibis(backend, src, kb, options, make_params, progress, rows_read, lap):
    """The same plan through ibis (Spark): cached DataFrames instead of temp tables."""
    params_future = _in_thread(make_params, "leukos-params")
    cached = []
    try:
        with _Poller(backend, progress, "scan", rows_read):
            obs = src.obs.cache()
            cached.append(obs)
        lap("scan")
        with _Poller(backend, progress, "units", None):
            pairs = obs.group_by(["analyte", "unit"]).aggregate(n=obs.count()).to_pyarrow().to_pylist()
        params = params_future.result()
        factors = unit_factors([(p["analyte"], p["unit"]) for p in pairs], kb, default_units=options.default_units)
        lap("units")
        with _Poller(backend, progress, "clean", None):
            clean = clean_observations(obs, factor_table(factors, kb, backend), params).cache()
            cached.append(clean)
            counts = _counts(clean)
        lap("counts")
        with _Poller(backend, progress, "episodes", None):
            valid = screened_persons(clean, params).cache()
            cached.append(valid)
            ep = episodes(valid, params, src.events, births=src.births).to_pyarrow()
        lap("episodes")
        return params, factors, counts, ep
    finally:
        for table in reversed(cached):
            table.release()


def _counts(clean) -> tuple[list[dict], int, list[dict]]:
    """Rows per (analyte, exclusion), distinct persons and unknown units (:mod:`leukos.screening.counts`)."""
    return counts_from_rows(counts_expr(clean).to_pyarrow().to_pylist())


def _naive_utc(table):
    """Timestamps as naive UTC (Spark returns them zoned, DuckDB naive): one schema for both engines."""
    import pyarrow as pa

    fields = []
    for f in table.schema:
        if pa.types.is_timestamp(f.type):
            f = f.with_type(pa.timestamp("us"))
        fields.append(f)
    return table.cast(pa.schema(fields))


def _summary(kb, params, options, input_path, engine, rows_read, persons, counts, unknown, factors, ep, src,
             seconds) -> dict[str, Any]:
    screened = sum(r["n"] for r in counts)
    excluded = {reason: 0 for reason in EXCLUSION_REASONS}
    by_analyte: dict[str, dict[str, int]] = {}
    used = 0
    for r in counts:
        a = by_analyte.setdefault(r["analyte"], {"used": 0})
        if r["exclusion"] is None:
            a["used"] += r["n"]
            used += r["n"]
        else:
            excluded[r["exclusion"]] = excluded.get(r["exclusion"], 0) + r["n"]
            a[r["exclusion"]] = a.get(r["exclusion"], 0) + r["n"]
    reasons = {f.analyte + "|" + f.unit: f.reason for f in factors if f.factor is None}
    unknown_list = [{"analyte": r["analyte"], "unit": r["unit"], "rows": r["n"],
                     "why": reasons.get(f"{r['analyte']}|{r['unit'] or ''}")}
                    for r in sorted(unknown, key=lambda r: (-r["n"], r["analyte"], r["unit"] or ""))]
    ep_rows = ep.to_pylist()
    unverified = [p for p in ("screening.episode_gap_hours", "screening.chemistry_days_before",
                              "screening.chemistry_days_after", "tumour_lysis.definition",
                              "hyperleukocytosis.wbc_threshold")
                  if kb.param(p).status != "V"]
    warnings = []
    if excluded["unknown_unit"]:
        warnings.append(f"{excluded['unknown_unit']} results had a unit that could not be converted: see unknown_units")
    if excluded["future_time"]:
        warnings.append(f"{excluded['future_time']} results are dated after the run time ({params.now.isoformat()})")
    if any(r["peak_censored"] for r in ep_rows):
        warnings.append("some peaks are censored ('>' results above the analyser range): the true peak is higher")
    if src.births is None:
        warnings.append("no year of birth (OMOP PERSON): the TLS criteria whose limits differ for children are "
                        "decided only where the adult and child limits agree")
    return {
        "leukos_version": __version__,
        "ruleset_version": kb.ruleset_version,
        "engine": engine,
        "format": options.fmt,
        "input": input_path.name,
        "rows_read": rows_read,
        "rows_screened": screened,
        "rows_used": used,
        "persons": persons,
        "persons_with_episodes": len({r["person_id"] for r in ep_rows}),
        "episodes": len(ep_rows),
        "episodes_with_tls_laboratory": sum(1 for r in ep_rows if r["tls_laboratory"]),
        "episodes_with_cytoreduction": sum(1 for r in ep_rows if r["first_cytoreduction_ts"] is not None),
        "cytoreduction_data": src.events is not None,
        "seconds": round(seconds, 3),
        "excluded": excluded,
        "by_analyte": by_analyte,
        "unknown_units": unknown_list,
        "unit_factors": [{"analyte": f.analyte, "unit": f.unit, "factor": f.factor} for f in factors
                         if f.factor is not None],
        "parameters": params.to_dict(),
        "unverified_parameters": unverified,
        "shared_rules": ["hyperleukocytosis.present", "tumour_lysis.laboratory (criteria, 25 % change, child limits, "
                         "ionised calcium, plasma potassium, reference limits)", "artefacts.pseudohyperkalemia_possible"],
        "not_assessed": dict(NOT_ASSESSED),
        "citations": params.citations(),
        "notes": src.notes,
        "mapping": src.mapping,
        "warnings": warnings,
    }


def find_episodes(backend: Backend, obs, params: ScreenParams, kb: KnowledgeBase, events=None, births=None,
                  default_units=None):
    """Run the episode expression on ``obs`` (an ibis table in the common shape) with ``backend``.

    Returns (episodes as a pyarrow Table, rows per (analyte, exclusion)). For tests and small
    inputs; :func:`screen` does the same with caching and progress.
    """
    con = backend.con
    pairs = con.to_pyarrow(obs.select("analyte", "unit").distinct()).to_pylist()
    factors = unit_factors([(p["analyte"], p["unit"]) for p in pairs], kb, default_units=default_units)
    clean = clean_observations(obs, factor_table(factors, kb), params)
    counts, _, _ = _counts(clean)
    return con.to_pyarrow(episodes(screened_persons(clean, params), params, events, births=births)), counts


@dataclass(frozen=True)
class Obs:
    """One observation in the common shape of :mod:`leukos.screening.sources` (for tests and small inputs)."""

    person_id: str | None
    ts: datetime | None
    analyte: str
    value: float | None
    unit: str | None
    comparator: str | None = None
    value_given: bool | None = None
    ref_high: float | None = None

    def given(self) -> bool:
        return self.value is not None if self.value_given is None else self.value_given


def observations_table(rows):
    """An ibis memtable in the common observation shape from :class:`Obs` rows."""
    import ibis
    import pyarrow as pa

    schema = pa.schema([("person_id", pa.string()), ("ts", pa.timestamp("us")), ("analyte", pa.string()),
                        ("value", pa.float64()), ("value_given", pa.bool_()), ("unit", pa.string()),
                        ("comparator", pa.string()), ("ref_high", pa.float64())])
    data = {"person_id": [r.person_id for r in rows], "ts": [r.ts for r in rows],
            "analyte": [r.analyte for r in rows], "value": [r.value for r in rows],
            "value_given": [r.given() for r in rows], "unit": [r.unit for r in rows],
            "comparator": [r.comparator for r in rows], "ref_high": [r.ref_high for r in rows]}
    return ibis.memtable(pa.table(data, schema=schema))


def events_table(rows):
    """An ibis memtable of (person_id, ts, kind) treatment events."""
    import ibis
    import pyarrow as pa

    schema = pa.schema([("person_id", pa.string()), ("ts", pa.timestamp("us")), ("kind", pa.string())])
    return ibis.memtable(pa.table({"person_id": [r[0] for r in rows], "ts": [r[1] for r in rows],
                                   "kind": [r[2] for r in rows]}, schema=schema))
