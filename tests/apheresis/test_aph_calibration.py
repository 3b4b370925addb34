"""The simulator's citrate fit runs on the packaged CSV; the stored fits come from the packaged data."""

from __future__ import annotations

import csv
import hashlib
import tomllib

from leukos.apheresis.calibrate import calibrate, calibration_toml
from leukos.knowledge import load_knowledge

from .helpers import CALIBRATION_CSV, OUTCOMES_MORE_CSV, YIELDS_CSV


def _rows():
    assert CALIBRATION_CSV.is_file(), f"calibration data not found at {CALIBRATION_CSV} (packaged data)"
    return list(csv.DictReader(CALIBRATION_CSV.read_text("utf-8").splitlines()))


def test_calibration_runs_and_reports_every_row():
    res = calibrate(load_knowledge(), _rows(), draws=60)
    assert {r["id"] for r in res.rows} == {"C1", "C2", "C3", "C4", "C4i"}
    for r in res.rows:
        assert 0 < r["predicted_pct"] < 100
    data = tomllib.loads(calibration_toml(res, data_sha256="x"))
    assert set(data["params"]) == {"ica_citrate_slope"}
    assert all(p["status"] == "U" and "leukos_calibration" in p["citations"] for p in data["params"].values())
    # Bolan 2001's -33 % iCa is reproduced at the median by construction
    assert res.citrate["predicted_ica_fall_pct"]["median"] == 33.0


def test_stored_fits_come_from_the_packaged_data():
    kb = load_knowledge()
    stored = kb.table("apheresis_calibration")["fit"]
    assert stored["data_sha256"] == hashlib.sha256(CALIBRATION_CSV.read_bytes()).hexdigest(), \
        "the CSV changed: rerun `leukos calibrate --write`"
    sha = kb.table("apheresis_outcome_fit")["data_sha256"]
    for key, path in (("calibration", CALIBRATION_CSV), ("more", OUTCOMES_MORE_CSV), ("yields", YIELDS_CSV)):
        assert sha[key] == hashlib.sha256(path.read_bytes()).hexdigest(), f"{path.name} changed: rerun `leukos calibrate --write`"


def test_fitted_values_are_in_the_knowledge_base():
    kb = load_knowledge()
    assert kb.param("apheresis_calibration.ica_citrate_slope").status == "U"
    for key in ("wbc_mu", "wbc_tau", "wbc_sigma", "plt_mu", "plt_sigma", "ce_mu", "ce_tau"):
        p = kb.param(f"apheresis_outcome_fit.{key}")
        assert p.status == "U" and "leukos_outcome_model" in p.citations
    assert kb.value("apheresis_outcome_fit.wbc_sigma") > 0
