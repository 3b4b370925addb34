"""Screening real and synthetic OMOP CDM 5.4 folders.

The Synthea27Nj sample (OHDSI EunomiaDatasets, Apache-2.0; tests/data/omop-synthea27nj/README.md)
holds 107 WBC results, all normal: it must give zero episodes; with episodes injected on
top it must give exactly the injected ones (ground truth written by the injector).
"""

from __future__ import annotations

import csv
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from leukos.screening import ScreenOptions, screen
from leukos.screening.synth import inject_omop, synth_omop

from .conftest import NOW, REPO_ROOT, rows_of

SAMPLE_DIR = Path(REPO_ROOT) / "tests" / "data" / "omop-synthea27nj"
SAMPLE_ZIP = SAMPLE_DIR / "synthea27nj_screening_tables.zip"


def test_sample_matches_its_recorded_hash():
    import hashlib

    recorded = dict(reversed(line.split()) for line in (SAMPLE_DIR / "SHA256SUMS").read_text().splitlines())
    assert hashlib.sha256(SAMPLE_ZIP.read_bytes()).hexdigest() == recorded[SAMPLE_ZIP.name]


@pytest.fixture(scope="module")
def synthea(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synthea")
    with zipfile.ZipFile(SAMPLE_ZIP) as z:
        for name in z.namelist():
            if name.endswith(".csv") and not name.startswith("__MACOSX"):
                z.extract(name, folder)
    return folder


def _truth(folder: Path) -> list[dict]:
    with (folder / "ground_truth.csv").open() as f:
        return list(csv.DictReader(f))


def _ts(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def assert_matches_truth(episodes: list[dict], truth: list[dict]):
    assert len(episodes) == len(truth)
    got = {(e["person_id"], e["start_ts"]): e for e in episodes}
    for t in truth:
        e = got[(t["person_id"], _ts(t["start_ts"]))]
        assert e["end_ts"] == _ts(t["end_ts"])
        assert e["peak_wbc_10e9_per_l"] == pytest.approx(float(t["peak_wbc_10e9_per_l"]))
        assert e["n_results"] == int(t["n_results"])
        assert e["tls_laboratory"] is (t["tls_laboratory"] == "True")
        assert e["first_cytoreduction_ts"] == _ts(t["first_cytoreduction_ts"])
        assert (e["first_cytoreduction_kind"] or "") == t["first_cytoreduction_kind"]


def test_synthea_sample_has_no_episodes(synthea, tmp_path):
    result = screen(synthea, tmp_path, options=ScreenOptions(fmt="omop", now=NOW))
    s = result.summary
    assert s["episodes"] == 0
    assert s["rows_read"] == 10040  # MEASUREMENT rows of the sample
    assert s["by_analyte"]["wbc"]["used"] == 107  # 107 WBC rows, unit 10*3/uL
    assert s["unknown_units"] == []
    assert (tmp_path / "episodes.parquet").exists() and (tmp_path / "report.html").exists()


def test_summary_file_counts_are_json_numbers(synthea, tmp_path):
    """Counts are numbers in summary.json, not text (DuckDB's sums reach Python as Decimal)."""
    import json

    screen(synthea, tmp_path, options=ScreenOptions(fmt="omop", now=NOW))
    s = json.loads((tmp_path / "summary.json").read_text("utf-8"))
    counts = [s["rows_read"], s["rows_screened"], s["rows_used"], s["persons"], s["episodes"],
              *s["excluded"].values(), *(n for a in s["by_analyte"].values() for n in a.values()),
              *(u["rows"] for u in s["unknown_units"])]
    assert s["rows_screened"] > 0
    assert all(type(n) is int for n in counts), counts


def test_synthea_with_injected_episodes_finds_exactly_them(synthea, tmp_path):
    folder = tmp_path / "omop"
    truth = inject_omop(synthea, folder, episodes=6, seed=11)
    assert len(truth) == 6
    result = screen(folder, tmp_path / "out", options=ScreenOptions(fmt="omop", now=NOW))
    assert_matches_truth(rows_of(result.episodes), _truth(folder))
    assert result.summary["cytoreduction_data"] is True


def test_synthetic_omop_ground_truth(tmp_path):
    truth = synth_omop(tmp_path / "omop", persons=120, episode_fraction=0.2, seed=5)
    assert truth, "the generator must inject episodes"
    result = screen(tmp_path / "omop", tmp_path / "out", options=ScreenOptions(fmt="omop", now=NOW))
    assert_matches_truth(rows_of(result.episodes), _truth(tmp_path / "omop"))


def test_omop_parquet_and_duckdb_database(tmp_path):
    """The same tables as Parquet files and inside a DuckDB database give the same episodes as CSV."""
    import duckdb

    synth_omop(tmp_path / "csv", persons=60, episode_fraction=0.3, seed=9)
    (tmp_path / "pq").mkdir()
    db = duckdb.connect(str(tmp_path / "cdm.duckdb"))
    for f in (tmp_path / "csv").glob("*.csv"):
        if f.name == "ground_truth.csv":
            continue
        db.execute(f"COPY (SELECT * FROM read_csv_auto('{f}')) TO '{tmp_path / 'pq' / (f.stem.lower() + '.parquet')}'")
        db.execute(f"CREATE TABLE {f.stem.lower()} AS SELECT * FROM read_csv_auto('{f}')")
    db.close()
    want = rows_of(screen(tmp_path / "csv", tmp_path / "o1", options=ScreenOptions(now=NOW)).episodes)
    assert want
    assert rows_of(screen(tmp_path / "pq", tmp_path / "o2", options=ScreenOptions(now=NOW)).episodes) == want
    assert rows_of(screen(tmp_path / "cdm.duckdb", tmp_path / "o3", options=ScreenOptions(now=NOW)).episodes) == want


def test_operator_concept_is_honoured(tmp_path):
    """A '>' result (operator_concept_id 4172704) above the range counts and marks the peak as censored;
    a '<' result below the threshold does not start an episode."""
    folder = tmp_path / "omop"
    synth_omop(folder, persons=3, episode_fraction=0.0, seed=1)
    with (folder / "MEASUREMENT.csv").open() as f:
        rows = list(csv.DictReader(f))
    template = next(r for r in rows if r["measurement_concept_id"] == "3000905")
    extra = []
    for i, (op, value, when) in enumerate([("4172704", "999", "2020-05-01 08:00:00"),
                                           ("4171756", "50", "2020-06-01 08:00:00")]):
        r = dict(template, measurement_id=str(10_000_000 + i), operator_concept_id=op, value_as_number=value,
                 measurement_datetime=when, measurement_date=when[:10])
        extra.append(r)
    with (folder / "MEASUREMENT.csv").open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(template))
        w.writerows(extra)
    result = screen(folder, tmp_path / "out", options=ScreenOptions(now=NOW))
    eps = rows_of(result.episodes)
    assert len(eps) == 1
    assert eps[0]["peak_wbc_10e9_per_l"] == 999.0 and eps[0]["peak_censored"] is True
    assert "PEAK_CENSORED" in eps[0]["flags"]


@pytest.mark.spark
def test_spark_screen_matches_duckdb_on_omop(tmp_path, spark):
    """The whole `screen` path (files, CONCEPT resolution, events) on Spark equals DuckDB."""
    synth_omop(tmp_path / "omop", persons=80, episode_fraction=0.25, seed=21)
    duck = screen(tmp_path / "omop", tmp_path / "d", options=ScreenOptions(now=NOW))
    spk = screen(tmp_path / "omop", tmp_path / "s", options=ScreenOptions(engine="spark", now=NOW),
                 spark_session=spark)
    assert spk.summary["engine"] == "spark"
    assert rows_of(spk.episodes) == rows_of(duck.episodes)
    assert spk.summary["excluded"] == duck.summary["excluded"]
    assert_matches_truth(rows_of(spk.episodes), _truth(tmp_path / "omop"))
