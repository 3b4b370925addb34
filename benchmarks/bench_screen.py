"""Benchmark: `leukos screen` end to end against a hand-written DuckDB SQL floor, in the same run.

Generates (with DuckDB, vectorised) an OMOP CDM 5.4 MEASUREMENT Parquet of ``--rows`` rows
(default 20 M: 5 % WBC, 5 % screening chemistry and blasts, 90 % other measurements; about 1
person in 400 has extreme counts), CONCEPT and PERSON, then measures on that file:

- the floor (:data:`FLOOR_SQL`): hand-written DuckDB SQL of the same WBC episodes, gaps and
  islands over the persons with any count above the threshold, the best of a run before and
  a run after leukos;
- the full reference (:data:`CENSUS_SQL` + the floor): a hand-written plan of every output leukos
  must give (unit census, exact counts with duplicates, persons, episodes), best of two runs; its
  ratio to the floor is what exact counting costs on its own;
- ``leukos screen`` (the CLI, in a child process): wall time, the time ``screen()`` reports
  (without interpreter start-up and imports) and the child's peak RSS; the ratio to the floor;
- with Spark (``--spark-rows``, default 2 M, ``local[2]``): the same three figures and whether
  the episodes are identical to DuckDB's on that file.

Usage: python benchmarks/bench_screen.py [--rows 20_000_000] [--spark-rows 2_000_000] [--no-spark]
       [--memory-limit 1GB]
Run it when the machine is quiet (``uptime``); report the ratios of one run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from leukos.knowledge import load_knowledge
from leukos.screening.synth import CONCEPT_COLS, LAB_CONCEPTS, _concept_rows

NOW = datetime(2026, 1, 1)


def generate(folder: Path, rows: int, threads: int = 2) -> Path:
    """MEASUREMENT.parquet + CONCEPT.csv in ``folder``; deterministic (hash-based values)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "CONCEPT.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CONCEPT_COLS, extrasaction="ignore")
        w.writeheader()
        w.writerows(_concept_rows())
    c = {a: v[0] for a, v in LAB_CONCEPTS.items()}
    persons = max(rows // 200, 10)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET preserve_insertion_order = false")
    # r in [0,1000): 0-49 WBC, 50-99 chemistry/blasts, the rest other measurements.
    sql = f"""
    COPY (
      WITH base AS (
        SELECT i AS measurement_id,
               (hash(i * 7 + 1) % {persons}) + 1 AS person_id,
               hash(i * 13 + 5) % 1000 AS r,
               TIMESTAMP '2015-01-01' + to_seconds(CAST(hash(i * 31 + 7) % (10 * 365 * 86400) AS BIGINT)) AS ts,
               (hash(i * 17 + 3) % 100000) / 100000.0 AS u
        FROM range({rows}) t(i)
      ), typed AS (
        SELECT *,
          CASE WHEN r < 50 THEN {c['wbc']}
               WHEN r < 60 THEN {c['potassium']} WHEN r < 70 THEN {c['creatinine']}
               WHEN r < 78 THEN {c['calcium']} WHEN r < 86 THEN {c['uric_acid']}
               WHEN r < 94 THEN {c['phosphate']} WHEN r < 100 THEN {c['blasts_pct']}
               ELSE 3000000 + (r % 50) END AS concept,
          -- about 1 person in 400 has extreme counts in one calendar month
          (person_id % 400 = 7) AND month(ts) = 3 AS extreme
        FROM base
      )
      SELECT measurement_id, person_id, concept AS measurement_concept_id,
             CAST(ts AS DATE) AS measurement_date, ts AS measurement_datetime,
             strftime(ts, '%H:%M:%S') AS measurement_time, 32856 AS measurement_type_concept_id,
             0 AS operator_concept_id,
             round(CASE WHEN concept = {c['wbc']} THEN (CASE WHEN extreme THEN 120 + u * 480 ELSE 3 + u * 9 END)
                        WHEN concept = {c['potassium']} THEN 3.4 + u * 1.8
                        WHEN concept = {c['creatinine']} THEN 0.6 + u * 0.8
                        WHEN concept = {c['calcium']} THEN 8.4 + u * 1.8
                        WHEN concept = {c['uric_acid']} THEN 3 + u * 5
                        WHEN concept = {c['phosphate']} THEN 2.5 + u * 2
                        WHEN concept = {c['blasts_pct']} THEN u * 90
                        ELSE u * 200 END, 2) AS value_as_number,
             0 AS value_as_concept_id,
             CASE WHEN concept = {c['wbc']} THEN 8848 WHEN concept = {c['potassium']} THEN 8753
                  WHEN concept = {c['blasts_pct']} THEN 8554
                  WHEN concept IN ({c['creatinine']}, {c['calcium']}, {c['uric_acid']}, {c['phosphate']}) THEN 8840
                  ELSE 0 END AS unit_concept_id,
             NULL::DOUBLE AS range_low, NULL::DOUBLE AS range_high, NULL::BIGINT AS provider_id,
             NULL::BIGINT AS visit_occurrence_id, NULL::BIGINT AS visit_detail_id,
             '' AS measurement_source_value, 0 AS measurement_source_concept_id,
             NULL::VARCHAR AS unit_source_value, 0 AS unit_source_concept_id, NULL::VARCHAR AS value_source_value,
             NULL::BIGINT AS measurement_event_id, NULL::BIGINT AS meas_event_field_concept_id
      FROM typed
    ) TO '{folder / 'measurement.parquet'}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)
    """
    con.execute(sql)
    con.execute(f"""COPY (SELECT i + 1 AS person_id, 8507 AS gender_concept_id,
                                 1930 + CAST(hash(i * 11 + 2) % 90 AS INTEGER) AS year_of_birth
                          FROM range({persons}) t(i)) TO '{folder / 'person.parquet'}' (FORMAT parquet)""")
    con.close()
    return folder


# The floor: the WBC episode definition written by hand (gaps and islands), on the same file.
FLOOR_SQL = """
WITH wbc AS (
  SELECT person_id, coalesce(measurement_datetime, CAST(measurement_date AS TIMESTAMP)) AS ts, value_as_number AS v
  FROM read_parquet('{file}') WHERE measurement_concept_id = {wbc} AND value_as_number IS NOT NULL),
hp AS (SELECT DISTINCT person_id FROM wbc WHERE v > {thr}),
w AS (SELECT * FROM wbc SEMI JOIN hp USING (person_id)),
r AS (SELECT *, sum(CASE WHEN v > {thr} THEN 0 ELSE 1 END)
                 OVER (PARTITION BY person_id ORDER BY ts, v ROWS UNBOUNDED PRECEDING) AS run FROM w),
h AS (SELECT *, lag(ts) OVER (PARTITION BY person_id, run ORDER BY ts, v) AS prev FROM r WHERE v > {thr}),
s AS (SELECT *, sum(CASE WHEN prev IS NULL OR epoch(ts) - epoch(prev) > {gap} * 3600 THEN 1 ELSE 0 END)
                 OVER (PARTITION BY person_id, run ORDER BY ts, v ROWS UNBOUNDED PRECEDING) AS seg FROM h)
SELECT person_id, min(ts) AS start_ts, max(ts) AS end_ts, count(*) AS n_results, max(v) AS peak
FROM s GROUP BY person_id, run, seg
"""


def floor(folder: Path, threads: int = 2) -> tuple[float, int]:
    """(seconds, episodes) of the hand-written SQL (the file's WBC unit, 10*3/uL, is 10*9/L: factor 1)."""
    kb = load_knowledge()
    sql = FLOOR_SQL.format(file=folder / "measurement.parquet", wbc=LAB_CONCEPTS["wbc"][0],
                           thr=float(kb.value("hyperleukocytosis.wbc_threshold")),
                           gap=float(kb.value("screening.episode_gap_hours")))
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    t = time.perf_counter()
    n = len(con.execute(sql).fetchall())
    seconds = time.perf_counter() - t
    con.close()
    return seconds, n


# The second reference: everything summary.json and episodes.parquet need, written by hand on the
# same file, with the unit census and the exact counts (rows per analyte, duplicates, persons)
# from one grouped pass over the screened rows, then the WBC episodes (FLOOR_SQL). Leukos cannot do
# less work than this and still count exactly: the ratio of this to the floor bounds what any plan
# that keeps the counts exact can reach on this machine.
CENSUS_SQL = """
WITH g AS (
  SELECT measurement_concept_id AS c, unit_concept_id AS u, unit_source_value AS us, person_id AS p, count(*) AS n
  FROM read_parquet('{file}') WHERE measurement_concept_id IN ({concepts})
  GROUP BY person_id, coalesce(measurement_datetime, CAST(measurement_date AS TIMESTAMP)), measurement_concept_id,
           value_as_number, operator_concept_id, unit_concept_id, unit_source_value)
SELECT c, u, us, sum(n) AS n_rows, count(*) AS n_distinct, (SELECT count(DISTINCT p) FROM g) AS persons
FROM g GROUP BY ALL
"""


def full_reference(folder: Path, threads: int = 2) -> tuple[float, int, dict]:
    """(seconds, episodes, counts) of the hand-written plan of every required output (:data:`CENSUS_SQL`
    then :data:`FLOOR_SQL`); the counts (screened rows, duplicates, persons) are checked against leukos's."""
    kb = load_knowledge()
    concepts = ", ".join(str(v[0]) for a, v in LAB_CONCEPTS.items()
                         if a in ("wbc", "blasts_pct", "potassium", "phosphate", "uric_acid", "calcium", "creatinine"))
    file = folder / "measurement.parquet"
    ep_sql = FLOOR_SQL.format(file=file, wbc=LAB_CONCEPTS["wbc"][0],
                              thr=float(kb.value("hyperleukocytosis.wbc_threshold")),
                              gap=float(kb.value("screening.episode_gap_hours")))
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    t = time.perf_counter()
    census = con.execute(CENSUS_SQL.format(file=file, concepts=concepts)).fetchall()
    n = len(con.execute(ep_sql).fetchall())
    seconds = time.perf_counter() - t
    con.close()
    counts = {"rows_screened": sum(r[3] for r in census), "duplicates": sum(r[3] - r[4] for r in census),
              "persons": census[0][5] if census else 0}
    return seconds, n, counts


def run_cli(folder: Path, out: Path, *args: str) -> dict:
    """`leukos screen` in a child process: wall seconds, screen() seconds, peak RSS (MB), summary."""
    cli = [sys.executable, "-c", "import sys; from leukos.cli.main import run; sys.argv[0] = 'leukos'; run()",
           "screen", str(folder), "--out", str(out), "--now", NOW.isoformat(), "--output", "json", "--no-report", *args]
    # A fresh wrapper process per run, so that its children's peak RSS is this run's alone
    # (for Spark: the larger of the Python driver and the JVM).
    wrapper = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(json.loads(sys.argv[1]), capture_output=True, text=True); "
               "w = time.perf_counter() - t; sys.stderr.write(r.stderr); "
               "print(json.dumps({'rc': r.returncode, 'out': r.stdout, 'wall': w, "
               "'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")
    res = subprocess.run([sys.executable, "-c", wrapper, json.dumps(cli)], capture_output=True, text=True, check=True)
    got = json.loads(res.stdout.strip().splitlines()[-1])
    if got["rc"] != 0:
        raise SystemExit(res.stderr[-3000:])
    summary = json.loads(got["out"])
    return {"wall": got["wall"], "screen": summary["seconds"], "rss_mb": got["rss"] / 1024, "summary": summary}


def warm_screen(folder: Path, out: Path, threads: int, engine: str = "duckdb") -> tuple[float, dict]:
    """screen() seconds (and its seconds per stage) in this process on its second call (imports and
    one-off set-up done, as for the floor, whose DuckDB is imported and connected before it is timed)."""
    from leukos.screening import ScreenOptions, screen

    options = ScreenOptions(now=NOW, threads=threads, engine=engine, report=False)
    screen(folder, out, options=options)
    summary = screen(folder, out, options=options).summary
    return summary["seconds"], summary.get("stage_seconds", {})


def _stages(label: str, stages: dict) -> str:
    return f"  {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())


def _row(label: str, rows: int, r: dict, floor_s: float) -> str:
    warm = r.get("warm")
    return (f"| {label} | {rows:,} | {r['wall']:.2f} | {r['screen']:.2f} | "
            f"{'-' if warm is None else f'{warm:.2f}'} | {floor_s:.3f} | {r['wall'] / floor_s:.1f}x | "
            f"{'-' if warm is None else f'{warm / floor_s:.1f}x'} | {r['rss_mb']:,.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--spark-rows", type=int, default=2_000_000)
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default=None, help="passed to leukos screen --memory-limit")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="leukos-bench-"))
    print(f"load: {os.getloadavg()[0]:.2f} (1 min)")
    extra = ["--threads", str(args.threads)] + (["--memory-limit", args.memory_limit] if args.memory_limit else [])
    table = ["| engine | rows | CLI wall s | screen() in the CLI s | screen() warm s | floor s | ratio CLI wall "
             "| ratio warm | peak RSS MB (CLI) |", "|---|---|---|---|---|---|---|---|---|"]
    try:
        big = work / f"omop-{args.rows}"
        if not (big / "measurement.parquet").exists():
            t = time.perf_counter()
            generate(big, args.rows, args.threads)
            print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s")
        f1, n_floor = floor(big, args.threads)
        d = run_cli(big, work / "out-d", *extra)
        d["warm"], warm_stages = warm_screen(big, work / "out-w", args.threads)
        f2, _ = floor(big, args.threads)
        floor_s = min(f1, f2)
        r1, n_ref, ref_counts = full_reference(big, args.threads)
        r2, _, _ = full_reference(big, args.threads)
        ref_s = min(r1, r2)
        summ = d["summary"]
        mine = {"rows_screened": summ["rows_screened"], "duplicates": summ["excluded"].get("duplicate", 0),
                "persons": summ["persons"]}
        print(f"floor: {n_floor} episodes; leukos: {summ['episodes']} episodes")
        print(f"hand-written plan of every required output: {ref_s:.3f} s = {ref_s / floor_s:.1f}x the floor, "
              f"{n_ref} episodes; counts {ref_counts} (leukos: {mine}); leukos warm = "
              f"{d['warm'] / ref_s:.1f}x this plan")
        print("seconds per stage of screen() (DuckDB):")
        print(_stages("CLI", d["summary"].get("stage_seconds", {})))
        print(_stages("warm", warm_stages))
        table.append(_row("DuckDB", args.rows, d, floor_s))
        if not args.no_spark:
            small = work / f"omop-{args.spark_rows}"
            if not (small / "measurement.parquet").exists():
                generate(small, args.spark_rows, args.threads)
            sf1, _ = floor(small, args.threads)
            ds = run_cli(small, work / "out-ds", *extra)
            ds["warm"], _ = warm_screen(small, work / "out-w", args.threads)
            s = run_cli(small, work / "out-s", "--engine", "spark")
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            s["warm"], _ = warm_screen(small, work / "out-ws", args.threads, engine="spark")
            sf2, _ = floor(small, args.threads)
            sfloor = min(sf1, sf2)
            same = (pq.read_table(work / "out-ds" / "episodes.parquet").to_pylist()
                    == pq.read_table(work / "out-s" / "episodes.parquet").to_pylist())
            table.append(_row("DuckDB", args.spark_rows, ds, sfloor))
            table.append(_row("Spark local[2]", args.spark_rows, s, sfloor))
            print(f"Spark episodes identical to DuckDB's: {same}")
        print("\n".join(table))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
