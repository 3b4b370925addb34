"""Benchmark: `leukos screen` on a generated OMOP MEASUREMENT Parquet, against DuckDB's I/O floor.

Generates (with DuckDB, in seconds) an OMOP CDM 5.4 MEASUREMENT table of ``--rows`` rows
(default 100 M; 5 % WBC, 5 % screening chemistry and blasts, 90 % other measurements; about
1 person in 400 has an extreme-WBC episode), a CONCEPT table, then reports, in the same run:

- the floor: DuckDB's bare scan-and-filter of the same file (the screening concepts, the
  columns screening reads, aggregated so that every value is read);
- end-to-end `screen()` on DuckDB (CONCEPT resolution, unit factors, exclusions, episodes,
  chemistry, parquet + summary + report), and the ratio to the floor;
- Spark local (``local[2]``) on a ``--spark-rows`` file (default 10 M) and whether its episodes
  are identical to DuckDB's on that file.

Usage: python benchmarks/bench_screen.py [--rows 100_000_000] [--spark-rows 10_000_000] [--no-spark]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb

from leukos.screening import ScreenOptions, screen
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
    con.close()
    return folder


def floor_seconds(folder: Path, threads: int = 2) -> float:
    """DuckDB's bare scan-and-filter of the columns screening reads, for the screening concepts."""
    ids = ",".join(str(v[0]) for v in LAB_CONCEPTS.values())
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    t = time.perf_counter()
    con.execute(f"""
      SELECT count(*), sum(value_as_number), max(measurement_datetime), max(measurement_date),
             max(person_id), max(unit_concept_id), max(operator_concept_id), max(unit_source_value)
      FROM read_parquet('{folder / 'measurement.parquet'}')
      WHERE measurement_concept_id IN ({ids})
    """).fetchall()
    seconds = time.perf_counter() - t
    con.close()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--spark-rows", type=int, default=10_000_000)
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="leukos-bench-"))
    try:
        t = time.perf_counter()
        big = generate(work / "big", args.rows, args.threads)
        size_mb = (big / "measurement.parquet").stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({size_mb:,.0f} MB Parquet) in {time.perf_counter() - t:.1f} s")
        floor = floor_seconds(big, args.threads)
        result = screen(big, work / "out-big", options=ScreenOptions(now=NOW, threads=args.threads))
        e2e = result.summary["seconds"]
        floor2 = floor_seconds(big, args.threads)  # measured again after, so that caching favours neither
        floor = min(floor, floor2)
        print(f"DuckDB floor (scan + filter): {floor:.2f} s")
        print(f"DuckDB screen end-to-end:     {e2e:.2f} s  -> {e2e / floor:.1f}x the floor; "
              f"{args.rows / e2e / 1e6:.1f} M rows/s; {result.summary['episodes']} episodes, "
              f"{result.summary['rows_screened']:,} rows screened")
        if not args.no_spark:
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            small = generate(work / "small", args.spark_rows, args.threads)
            d = screen(small, work / "out-d", options=ScreenOptions(now=NOW, threads=args.threads))
            t = time.perf_counter()
            s = screen(small, work / "out-s", options=ScreenOptions(now=NOW, engine="spark"))
            spark_s = time.perf_counter() - t
            same = d.episodes.to_pylist() == s.episodes.to_pylist()
            print(f"Spark local[2] on {args.spark_rows:,} rows: {spark_s:.1f} s (DuckDB {d.summary['seconds']:.2f} s on "
                  f"the same file, Spark/DuckDB {spark_s / d.summary['seconds']:.1f}x); "
                  f"{s.summary['episodes']} episodes; identical to DuckDB: {same}")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
