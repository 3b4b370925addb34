"""Fixtures for the screening tests: one DuckDB per test, one local Spark for the whole run."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("ibis")
pytest.importorskip("duckdb")

from leukos.knowledge import load_knowledge  # noqa: E402
from leukos.screening.backends import connect_duckdb, connect_spark, spark_session  # noqa: E402
from leukos.screening.episodes import ScreenParams  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 1)


@pytest.fixture(scope="session")
def kb():
    return load_knowledge()


@pytest.fixture(scope="session")
def params(kb):
    return ScreenParams.from_kb(kb, now=NOW)


@pytest.fixture()
def duck():
    backend = connect_duckdb()
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def spark():
    """A real local Spark (loopback only), shared by every Spark test of the run (start-up ~10 s)."""
    pytest.importorskip("pyspark")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.fixture()
def spark_backend(spark):
    return connect_spark(spark)


def _norm(v):
    if isinstance(v, datetime) and v.tzinfo is not None:
        return v.astimezone(UTC).replace(tzinfo=None)
    return v


def rows_of(table) -> list[dict]:
    """pyarrow Table (or list of dicts) -> list of dicts with naive UTC datetimes, sorted by episode."""
    rows = table.to_pylist() if hasattr(table, "to_pylist") else list(table)
    rows = [{k: _norm(v) for k, v in r.items()} for r in rows]
    return sorted(rows, key=lambda r: (r["person_id"], r["episode_no"]))


def assert_same_episodes(got: list[dict], want: list[dict], columns=None, label=""):
    assert len(got) == len(want), f"{label}: {len(got)} episodes vs {len(want)}\n{got}\n{want}"
    for g, w in zip(got, want, strict=True):
        for col in columns or w.keys():
            a, b = g[col], w[col]
            if isinstance(a, float) and isinstance(b, float):
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), f"{label} {w['episode_id']}.{col}: {a} != {b}"
            else:
                assert a == b, f"{label} {w['episode_id']}.{col}: {a!r} != {b!r}"


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory):
    """A Spark standalone master and one worker on 127.0.0.1 (separate JVMs), for the whole run."""
    pytest.importorskip("pyspark")
    import shutil

    if shutil.which("java") is None:
        pytest.skip("Java 17 is needed for Spark (scripts/system-deps/java.sh)")
    from .spark_cluster import StandaloneCluster

    cluster = StandaloneCluster(tmp_path_factory.mktemp("spark-cluster")).start()
    yield cluster
    cluster.stop()
