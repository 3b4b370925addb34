"""Outcome model, leave-one-source-out validation, bad calibration input, multi-day collections."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from leukos.apheresis import PlanOptions, plan_leukapheresis
from leukos.apheresis.outcome import fit_fall_model, predict_fall
from leukos.apheresis.outcome_data import read_outcome_rows
from leukos.apheresis.validate import cross_validate_falls, validate_all
from leukos.cli.main import app, register

from .helpers import CALIBRATION_CSV, OUTCOMES_MORE_CSV, YIELDS_CSV, kb, make_case

register()
runner = CliRunner()


def _tables():
    return {k: list(csv.DictReader(p.read_text("utf-8").splitlines()))
            for k, p in (("calibration", CALIBRATION_CSV), ("more", OUTCOMES_MORE_CSV), ("yields", YIELDS_CSV))}


@pytest.fixture(scope="module")
def data():
    return read_outcome_rows(kb(), _tables())


def test_rows_scored_and_shown(data):
    scored = {r.id for r in data.wbc if r.scored}
    assert scored == {"C1", "C2", "C3", "C4", "C4i", "N02", "N04", "N09b", "N25a", "N26a", "N27"}
    shown = {r.id: r.reason for r in data.wbc if not r.scored}
    assert "chemotherapy" in shown["N01"] and "hydroxyurea" in shown["N19"] and "bound" in shown["N03"] and "exchange transfusion" in shown["N09c"]
    assert "whole course" in shown["N25b"] and "whole course" in shown["N26b"]
    assert len(data.platelets) == 14 and {r.marker for r in data.ce} == {"CD34", "CD3"}
    # the bundled yields file has two rows with text in a numeric cell: reported and skipped
    assert {(p.file, p.row) for p in data.problems} == {("yields", "17"), ("yields", "30")}


def test_bad_calibration_input_is_reported_row_by_row_and_skipped():
    t = _tables()
    bad = [dict(r) for r in t["calibration"]]
    bad[2]["pct_reduction_reported"] = "about a third"   # C3: text in a numeric cell
    bad[0]["post_wbc_1e9_per_L"] = "6000"                 # C1: post > 10 x pre
    bad[7]["volume_processed_L"] = "-11.8"                # C7: negative volume
    d = read_outcome_rows(kb(), t | {"calibration": bad})
    probs = {(p.row, p.field) for p in d.problems if p.file == "calibration"}
    assert probs == {("3", "pct_reduction_reported"), ("1", "post_wbc_1e9_per_L"), ("8", "volume_processed_L")}
    assert all("row skipped" in p.text() for p in d.problems)
    assert not {"C1", "C3", "C7"} & {r.id for r in d.wbc}
    missing = [{k: v for k, v in r.items() if k != "stat"} for r in t["more"]]
    d2 = read_outcome_rows(kb(), t | {"more": missing})
    assert any(p.file == "more" and p.row == "header" and "stat" in p.field for p in d2.problems)
    assert not any(r.source.startswith("N") for r in d2.wbc)


def test_held_out_value_does_not_influence_its_own_prediction(data):
    k = kb()
    base = cross_validate_falls(k, data.wbc, structure="pooled", draws=800)
    changed = [replace(r, observed_pct=10.0) if r.id == "C2" else r for r in data.wbc]
    moved = cross_validate_falls(k, changed, structure="pooled", draws=800)
    b = {r["id"]: r for r in base.rows}
    m = {r["id"]: r for r in moved.rows}
    assert m["C2"]["model"] == b["C2"]["model"]
    assert m["C3"]["model"] != b["C3"]["model"]       # but it is used when another source is held out


def test_unscored_rows_are_shown_but_not_counted(data):
    tab = cross_validate_falls(kb(), data.wbc, structure="pooled", draws=500)
    assert len(tab.rows) == len(data.wbc) and tab.summary["model"]["n"] == 11
    assert tab.summary["constant_35"]["n"] == 11 and tab.summary["_sources"]["n"] == 10


def test_more_volume_more_fall_and_cohort_band_narrower_than_patient(data):
    fit = fit_fall_model(data.wbc, structure="pooled", prior_scale=0.5, count_reference=250)
    row = next(r for r in data.wbc if r.id == "N02")
    lo = predict_fall(fit, replace(row, bv_low=1.0, bv_high=1.0))
    hi = predict_fall(fit, replace(row, bv_low=2.0, bv_high=2.0))
    assert hi.median > lo.median
    cohort = predict_fall(fit, replace(row, kind="cohort", n=50, bv_low=2.0, bv_high=2.0))
    assert cohort.p95 - cohort.p05 < hi.p95 - hi.p05


def test_stored_validation_matches_a_fresh_run(data):
    k = kb()
    res = validate_all(k, data)
    stored = k.table("apheresis_outcome_fit")["validation"]
    for what in ("wbc", "platelets", "ce"):
        chosen = res["chosen"][what]
        assert stored[what]["chosen"]["structure"] == chosen
        fresh = res[what][chosen].summary["model"]
        key = "mae_pct_points" if what != "ce" else "mean_abs_log_error"
        assert stored[what][chosen.replace("+", "_")]["model"][key] == fresh[key]
    # the count-dependent efficiency is kept only if cross-validation prefers it: it does not
    assert res["chosen"]["wbc"] != "groups+count"
    # the candidates that were tried and the band sensitivity are stored as run, not hand-edited
    for what in ("wbc", "platelets"):
        for v, summ in res["candidates"][what].items():
            assert stored[what]["candidates"][v.replace("-", "_")]["mae_pct_points"] == summ["mae_pct_points"]
        for b, summ in res["bands"][what].items():
            assert stored[what]["bands"][b.replace("-", "_")]["coverage_90"] == summ["coverage_90"]


def test_centre_variants_only_for_the_pooled_model(data):
    with pytest.raises(ValueError, match="variant"):
        cross_validate_falls(kb(), data.wbc, structure="groups", variant="source-median", draws=200)
    flat = cross_validate_falls(kb(), data.platelets, structure="pooled", what="platelets", draws=400,
                                variant="no-volume-scaling")
    rows = {r["id"]: r for r in flat.rows}
    # without volume scaling the large-volume collections (3-4 TBV) are predicted like a 1-TBV depletion
    assert abs(rows["Y01a"]["model"]["median"] - rows["C3"]["model"]["median"]) < 5.0


def _few_sources(data):
    """Three cohort sources that agree closely: the posterior mode of tau collapses toward 0."""
    keep = {"C2", "C4", "N04"}
    return [r for r in data.wbc if r.id in keep]


def test_band_for_a_new_source_carries_tau_uncertainty_not_just_its_mode(data):
    # with three agreeing sources the plug-in band (tau at its mode) is nearly the sampling error of a
    # cohort mean; the posterior band must stay wider because tau is barely determined by 3 sources
    fit = fit_fall_model(_few_sources(data), structure="pooled", prior_scale=0.5, count_reference=250)
    row = replace(next(r for r in data.wbc if r.id == "C3"), scored=True)
    plug = predict_fall(fit, row, band="plug-in")
    post = predict_fall(fit, row, band="posterior")
    assert fit.tau_mode < fit.tau                     # the mode understates the posterior spread
    assert post.p95 - post.p05 > 1.3 * (plug.p95 - plug.p05)
    # the posterior weights are a distribution over the grid, the mode is kept separately
    w = [p.weight for p in fit.posterior[1:]]
    assert abs(sum(w) - 1.0) < 1e-9 and fit.posterior[0].weight == 0.0


def test_band_narrows_for_a_mean_of_many_procedures_but_not_below_tau(data):
    fit = fit_fall_model(data.wbc, structure="pooled", prior_scale=0.5, count_reference=250)
    row = replace(next(r for r in data.wbc if r.id == "C2"), bv_low=2.0, bv_high=2.0)
    one = predict_fall(fit, replace(row, kind="patient", n=1))
    many = predict_fall(fit, replace(row, kind="cohort", n=200))
    assert many.p95 - many.p05 < one.p95 - one.p05
    # a mean over 200 procedures still varies between sources (tau): the band does not collapse
    no_tau = replace(fit, tau=0.0, posterior=tuple(replace(p, tau=0.0) for p in fit.posterior))
    assert many.p95 - many.p05 > 2.0 * (predict_fall(no_tau, replace(row, kind="cohort", n=200)).p95
                                        - predict_fall(no_tau, replace(row, kind="cohort", n=200)).p05)


@pytest.mark.parametrize("rid,expected", [
    ("C3", 1.0 / (0.5 / 17 + 0.5 / 39)),   # Lee 2014: 39 procedures in 17 patients (the paper's counts)
    ("C2", 1.0 / (0.5 / 72 + 0.5 / 87)),   # Lopert 2023: 87 procedures in 72 patients
    ("C4", 29.0),                          # 1994 series: number of patients not reported -> independent
    ("N02", 1.0),                          # one procedure of one patient
])
def test_cohort_mean_counts_same_patient_procedures_as_correlated(data, rid, expected):
    row = next(r for r in data.wbc if r.id == rid)
    assert row.n_eff == pytest.approx(expected)


def test_fewer_patients_behind_a_cohort_mean_widen_its_band(data):
    fit = fit_fall_model(data.wbc, structure="pooled", prior_scale=0.5, count_reference=250)
    row = replace(next(r for r in data.wbc if r.id == "C3"), bv_low=2.0, bv_high=2.0)
    many = predict_fall(fit, replace(row, n_patients=39))
    few = predict_fall(fit, replace(row, n_patients=2))
    assert few.p95 - few.p05 > many.p95 - many.p05


def test_robust_centre_resists_one_extreme_case_report(data):
    rows = [r for r in data.wbc if r.scored]
    c1 = next(r for r in rows if r.id == "C1")
    extreme = [replace(r, observed_pct=3.0) if r.id == "C1" else r for r in rows]
    kw = {"prior_scale": 0.5, "count_reference": 250}
    for structure, limit in (("pooled+median", 0.02), ("pooled", 0.05)):
        a = fit_fall_model(rows, structure=structure, **kw)
        b = fit_fall_model(extreme, structure=structure, **kw)
        moved = abs(a.mu - b.mu)
        if structure == "pooled+median":
            assert moved < limit                     # C1 was already below the median: the centre stays put
        else:
            assert moved > limit                     # the GLS mean follows the extreme row
    assert c1.kind == "patient"


def test_collection_target_beyond_one_session_gives_a_multi_day_plan():
    case = make_case(patient={"weight_kg": 80, "height_cm": 178, "sex": "male", "age_years": 45})
    p = plan_leukapheresis(case, PlanOptions(goal="stem-cells", cd34_per_ul=25, target_cd34_10e6_per_kg=5, draws=40), kb())
    c = p.collection
    assert c["one_session_reaches_target"] is False
    md = c["multi_day_plan"]
    assert md["days_needed_at_central_ce"] >= 2 and md["duration_per_day_min"] <= 480
    prob = md["probability_by_day_pct"]
    assert prob == sorted(prob) and prob[0] < 50 < prob[-1]


def test_calibrate_cv_cli_json_and_bad_file(tmp_path):
    r = runner.invoke(app, ["calibrate", "--cv", "-f", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert set(d["validation"]["wbc"]) == {"pooled", "pooled+median", "groups", "groups+count"}
    assert set(d["validation"]["bands"]["wbc"]) == {"posterior", "plug-in", "higgins-t", "student-t"}
    assert set(d["validation"]["candidates"]["wbc"]) == {"unweighted-mean", "source-median", "cohort-mean", "no-volume-scaling",
                                                         "practice-volume-range", "reported-volume-uncertain",
                                                         "moment-matched-sigma", "cohort-mean-inverted"}
    assert d["per_patient_learning"]["mae_after_update_pct_points"] < d["per_patient_learning"]["mae_population_pct_points"]
    assert len(d["problems"]) == 2
    text = CALIBRATION_CSV.read_text("utf-8").replace(",250.146,", ",lots,")
    bad = tmp_path / "bad.csv"
    bad.write_text(text, "utf-8")
    r = runner.invoke(app, ["calibrate", "--data", str(bad), "--draws", "20"])  # same reader as --cv, without the refits
    assert r.exit_code == 0, r.output
    assert "calibration row 3: pre_wbc_1e9_per_L = 'lots'" in r.output
    r = runner.invoke(app, ["calibrate", "--cv", "--data", str(tmp_path / "none.csv")])
    assert r.exit_code == 2 and "Traceback" not in r.output


# ---------------------------------------------------------------- round 3 candidates (issue 10)

def test_moment_matching_reproduces_a_reported_mean_and_sd_where_the_delta_method_does_not():
    from leukos.apheresis.outcome import _dy_df, _fall_moments, moment_match
    f, sd, x = 0.503, 0.212, 3.0 ** 0.5          # Lopert 2023: 50.3 +/- 21.2 %, volume assumed 1.73 TBV
    m, s = moment_match(f, sd, x)
    assert _fall_moments(m, s, x) == pytest.approx((f, sd), abs=1e-4)
    delta = sd * _dy_df(f)
    assert _fall_moments(m, delta, x)[1] < sd - 0.01      # first order understates the spread of the falls
    assert s > delta


def test_inverted_cohort_mean_is_the_median_log_k_whose_procedures_average_the_reported_fall(data):
    from leukos.apheresis.outcome import _fall_moments, cohort_log_k, log_k
    c2 = next(r for r in data.wbc if r.id == "C2")
    theta = cohort_log_k(c2.observed_pct / 100.0, 0.55, c2.blood_volumes)
    assert _fall_moments(theta, 0.55, c2.blood_volumes)[0] == pytest.approx(c2.observed_pct / 100.0, abs=1e-6)
    assert theta < log_k(c2)           # the mean fall of spread procedures exceeds the fall at their median
    big = predict_fall(fit_fall_model(data.wbc, structure="pooled", prior_scale=0.5, count_reference=250),
                       replace(c2, kind="cohort", n=200, n_patients=None), draws=2000)
    assert 0 < big.median < 100


def test_volume_candidates_change_only_the_assumed_volumes(data):
    from leukos.apheresis.validate import _variant_rows
    k = kb()
    assumed = {r.id for r in data.wbc if r.volume_assumed}
    assert {r.id for r in data.wbc if r.scored} & assumed == {"C2", "C3", "N02", "N04", "N09b", "N25a", "N26a", "N27"}
    wide = {r.id: r for r in _variant_rows(k, data.wbc, "practice-volume-range")}
    base = {r.id: r for r in data.wbc}
    for rid, r in wide.items():
        if rid in assumed:
            assert (r.bv_low, r.bv_high) == (1.0, 3.0)
            # same geometric centre as the ASFA range: the candidate widens, it does not move the centre
            assert r.blood_volumes == pytest.approx(base[rid].blood_volumes)
        else:
            assert (r.bv_low, r.bv_high) == (base[rid].bv_low, base[rid].bv_high)
        assert r.observed_pct == base[rid].observed_pct       # published values never change
    sens = {r.id: r for r in _variant_rows(k, data.wbc, "reported-volume-uncertain")}
    assert {rid for rid, r in sens.items() if (r.bv_low, r.bv_high) != (base[rid].bv_low, base[rid].bv_high)} == {"C1", "C4", "C4i"}
    assert sens["C1"].bv_low < base["C1"].blood_volumes < sens["C1"].bv_high


def test_heavy_tailed_source_effect_widens_the_band(data):
    fit = fit_fall_model(data.wbc, structure="pooled+median", prior_scale=0.5, count_reference=250)
    row = next(r for r in data.wbc if r.id == "C3")
    normal = predict_fall(fit, row, band="posterior", draws=6000)
    heavy = predict_fall(fit, row, band="student-t", draws=6000, t_df=3)
    assert heavy.p95 - heavy.p05 > normal.p95 - normal.p05
    with pytest.raises(ValueError, match="variant"):
        cross_validate_falls(kb(), data.wbc, structure="pooled+median", variant="no-such-variant", draws=100)
