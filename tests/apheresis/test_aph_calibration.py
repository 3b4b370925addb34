"""Calibration runs on the packaged CSV; the stored fit is from that data and fits it (apheresis.md §8)."""

from __future__ import annotations

import csv
import hashlib
import tomllib

import pytest

from leukos.apheresis.calibrate import calibrate, calibration_toml
from leukos.knowledge import load_knowledge

from .helpers import CALIBRATION_CSV


def _rows():
    assert CALIBRATION_CSV.is_file(), f"calibration data not found at {CALIBRATION_CSV} (packaged data)"
    return list(csv.DictReader(CALIBRATION_CSV.read_text("utf-8").splitlines()))


def test_calibration_runs_and_reports_every_row():
    res = calibrate(load_knowledge(), _rows(), draws=60, maxiter=15)
    assert {r["id"] for r in res.rows} == {"C1", "C2", "C3", "C4", "C4i"}
    assert 0.02 < res.params["e0"] < 0.99 and res.params["c_half_10e9_per_l"] > 0
    for r in res.rows:
        assert 0 < r["predicted_pct"] < 100
    text = calibration_toml(res, data_sha256="x")
    data = tomllib.loads(text)
    assert set(data["params"]) == {"e0", "c_half_10e9_per_l", "e0_logit_sd", "e_platelet", "e_platelet_logit_sd",
                                   "ica_citrate_slope"}
    assert all(p["status"] == "U" and "leukos_calibration" in p["citations"] for p in data["params"].values())


def test_stored_calibration_comes_from_this_data_and_fits_it():
    kb = load_knowledge()
    stored = kb.table("apheresis_calibration")["fit"]
    assert stored["data_sha256"] == hashlib.sha256(CALIBRATION_CSV.read_bytes()).hexdigest(), \
        "the CSV changed: rerun `python scripts/calibrate.py --write`"
    fitted = [r for r in stored["rows"] if r["fitted"]]
    assert len(fitted) == 4
    # mean falls within 15 percentage points of every fitted source (their SDs are 16-21 points)
    for r in fitted:
        assert abs(r["residual_pct_points"]) <= 15, r
    # pooled: the continuous-flow cohorts (C2-C4) average within 5 points
    coh = [r for r in fitted if r["id"] != "C1"]
    assert abs(sum(r["residual_pct_points"] for r in coh) / len(coh)) <= 5
    # the count dependence is real: the extreme CML case (599) is predicted to fall less than the cohorts
    c1 = next(r for r in fitted if r["id"] == "C1")
    assert c1["predicted_pct"] < min(r["predicted_pct"] for r in coh)


@pytest.mark.parametrize("key", ["e0", "c_half_10e9_per_l", "e0_logit_sd", "e_platelet", "e_platelet_logit_sd", "ica_citrate_slope"])
def test_fitted_values_are_in_the_knowledge_base(key):
    p = load_knowledge().param(f"apheresis_calibration.{key}")
    assert p.status == "U" and p.value > 0
