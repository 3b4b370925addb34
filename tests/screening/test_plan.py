"""The DuckDB plan (the shared expressions compiled to SQL once, run on the connection) gives
exactly what the same expressions give when ibis runs them (the path Spark takes), on one engine:
episodes, exclusion and duplicate counts, persons, unknown units, unit factors."""

from __future__ import annotations

from functools import partial

import pytest

from leukos.screening import engine
from leukos.screening.backends import connect_duckdb
from leukos.screening.episodes import ScreenParams
from leukos.screening.sources import read_source
from leukos.screening.synth import synth_omop

from .conftest import NOW
from .test_sources_and_bad_input import MIMIC_ITEMS, MIMIC_LABS, TABLE

TABLE_COLUMNS = {"person": "patient", "time": "when", "name": "test", "value": "result", "unit": "units"}


def _both(path, fmt, kb, columns=None, now=NOW):
    options = engine.ScreenOptions(fmt=fmt, now=now, columns=columns or {})
    make_params = partial(ScreenParams.from_kb, kb, now=now)
    out = []
    for run in (engine._run_duckdb, engine._run_ibis):
        backend = connect_duckdb()
        try:
            src = read_source(backend, path, fmt, kb, columns=options.columns)
            params, factors, (counts, persons, unknown), ep = run(backend, src, kb, options, make_params, None, 0,
                                                                  engine._laps({}))
            key = lambda r: (r["analyte"], r["exclusion"] or "")  # noqa: E731
            out.append({"counts": sorted(counts, key=key), "persons": persons,
                        "unknown": sorted(unknown, key=lambda r: (r["analyte"], r["unit"] or "")),
                        "factors": factors, "params": params.to_dict(),
                        "episodes": engine._naive_utc(ep).to_pylist()})
        finally:
            backend.close()
    return out


def test_plan_equals_ibis_on_synthetic_omop(tmp_path, kb):
    synth_omop(tmp_path / "omop", persons=150, episode_fraction=0.2, seed=9)
    sql, expr = _both(tmp_path / "omop", "omop", kb)
    assert sql["episodes"], "the generator must inject episodes"
    assert sql == expr


def test_plan_equals_ibis_on_bad_rows(tmp_path, kb):
    path = tmp_path / "labs.csv"
    path.write_text(TABLE + "c,2024-01-01 08:00,Potassium,4.0,mmol/L\n")  # a person without a WBC
    sql, expr = _both(path, "table", kb, TABLE_COLUMNS)
    assert sql["persons"] == 3
    assert {r["exclusion"] for r in sql["counts"]} >= {"duplicate", "unknown_unit", "future_time", None}
    assert sql == expr


@pytest.mark.parametrize("with_chemistry", [True, False])
def test_plan_equals_ibis_on_mimic(tmp_path, kb, with_chemistry):
    (tmp_path / "d_labitems.csv").write_text(MIMIC_ITEMS)
    labs = MIMIC_LABS if with_chemistry else "\n".join(line for line in MIMIC_LABS.splitlines()
                                                      if ",50971," not in line) + "\n"
    (tmp_path / "labevents.csv").write_text(labs)
    sql, expr = _both(tmp_path, "mimic", kb, now=NOW.replace(year=2200))  # MIMIC dates are shifted
    assert sql["episodes"]
    assert sql == expr


def test_integer_person_ids_give_the_episodes_of_text_ids(tmp_path, kb):
    """Integer person ids (Parquet) are worked on as integers; the episodes give them as text, with the
    order, episode ids and counts the same ids written as text give; a null id is missing_person."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from leukos.screening import ScreenOptions, screen

    rows = [(9, "2024-01-01 08:00", "wbc", 150.0), (9, "2024-01-01 20:00", "wbc", 160.0),
            (9, "2024-01-01 20:00", "wbc", 160.0),  # a duplicate
            (10, "2024-01-02 08:00", "wbc", 120.0), (10, "2024-01-02 09:00", "potassium", 6.5),
            (None, "2024-01-01 07:00", "wbc", 130.0), (11, "2024-01-01 07:00", "wbc", 7.0)]
    columns = {"person": "person", "time": "time", "name": "test", "value": "value"}
    table = pa.table({"person": pa.array([r[0] for r in rows], pa.int64()), "time": [r[1] for r in rows],
                      "test": [r[2] for r in rows], "value": [r[3] for r in rows],
                      "unit": ["mmol/L" if r[2] == "potassium" else "10*9/L" for r in rows]})
    pq.write_table(table, tmp_path / "labs.parquet")
    (tmp_path / "labs.csv").write_text("person,time,test,value,unit\n" + "".join(
        f"{'' if p is None else p},{t},{a},{v},{'mmol/L' if a == 'potassium' else '10*9/L'}\n" for p, t, a, v in rows))

    sql, expr = _both(tmp_path / "labs.parquet", "table", kb, columns)
    assert sql == expr
    assert [(e["person_id"], e["episode_id"], e["n_results"]) for e in sql["episodes"]] == [
        ("10", "10:1", 1), ("9", "9:1", 2)]  # text order, as for text ids
    assert sql["episodes"][0]["potassium_mmol_per_l"] == 6.5
    counts = {r["exclusion"]: r["n"] for r in sql["counts"] if r["analyte"] == "wbc"}
    assert counts["missing_person"] == 1 and counts["duplicate"] == 1 and sql["persons"] == 3
    text, _ = _both(tmp_path / "labs.csv", "table", kb, columns)
    assert {k: text[k] for k in ("episodes", "counts", "persons")} == {k: sql[k] for k in ("episodes", "counts", "persons")}

    result = screen(tmp_path / "labs.parquet", tmp_path / "out",
                    options=ScreenOptions(fmt="table", now=NOW, columns=columns, report=False))
    assert pa.types.is_string(pq.read_schema(result.episodes_path).field("person_id").type)
    assert result.summary["excluded"]["missing_person"] == 1


def test_factor_rows_are_written_as_safe_literals():
    """Unit text from the input reaches the factor table as SQL literals: quotes cannot break out."""
    import duckdb

    con = duckdb.connect()
    for value in ("mg/dL", "x'); DROP TABLE t; --", "10^9/L", 0.001, 1e-9, 2.5):
        assert con.execute(f"SELECT {engine._sql_literal(value)}").fetchone()[0] == value
