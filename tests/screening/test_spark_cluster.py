"""`leukos screen --engine spark --spark-master spark://127.0.0.1:PORT` on a real standalone cluster
(a master and a worker in their own JVMs) finds the same episodes as DuckDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from leukos.screening import ScreenOptions, screen
from leukos.screening.synth import synth_omop

from .conftest import NOW, REPO_ROOT, rows_of


@pytest.mark.spark
def test_cli_on_a_standalone_cluster_matches_duckdb(spark_cluster, tmp_path):
    truth = synth_omop(tmp_path / "omop", persons=150, episode_fraction=0.2, seed=33)
    assert truth
    duck = screen(tmp_path / "omop", tmp_path / "d", options=ScreenOptions(now=NOW))
    env = dict(os.environ, PYTHONPATH=str(Path(REPO_ROOT) / "src"), SPARK_LOCAL_IP="127.0.0.1",
               PYSPARK_PYTHON=sys.executable)
    env.pop("LEUKOS_SPARK_MASTER", None)
    cli = [sys.executable, "-c", "import sys; from leukos.cli.main import run; sys.argv[0] = 'leukos'; run()"]
    res = subprocess.run([*cli, "screen", str(tmp_path / "omop"),
                          "--engine", "spark", "--spark-master", spark_cluster.url, "--out", str(tmp_path / "s"),
                          "--now", NOW.isoformat(), "--output", "json", "--no-report"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    assert summary["engine"] == "spark" and summary["episodes"] == len(truth)
    spark_eps = rows_of(pq.read_table(tmp_path / "s" / "episodes.parquet"))
    assert spark_eps == rows_of(duck.episodes)
    assert summary["excluded"] == duck.summary["excluded"]
    # The job ran on the cluster: the master lists the finished application.
    apps = spark_cluster.state().get("completedapps", []) + spark_cluster.state().get("activeapps", [])
    assert any(a.get("name") == "leukos-screen" for a in apps), apps
