"""CLI: plan, simulate, calibrate through typer's CliRunner (exit 2, no traceback for bad input)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leukos.cli.main import app, register

from .helpers import CALIBRATION_CSV, REPO, kb

register()
runner = CliRunner()
AML = str(REPO / "examples" / "01-aml-leukostasis.yaml")
APL = str(REPO / "examples" / "02-apl-coagulopathy.yaml")


def test_plan_text_and_json():
    r = runner.invoke(app, ["plan", AML, "--draws", "60"])
    assert r.exit_code == 0, r.output
    assert "Q_wb = Q_in × (R−1)/R" in r.output and "Safety checklist" in r.output
    r = runner.invoke(app, ["plan", AML, "--format", "json", "--draws", "60", "--target", "80"])
    d = json.loads(r.output)
    assert d["tbv_method"] == "nadler" and d["sessions_to_target"]["target_wbc_10e9_per_l"] == 80


def test_plan_apl_says_not_recommended():
    r = runner.invoke(app, ["plan", APL, "--draws", "40"])
    assert r.exit_code == 0 and "NOT RECOMMENDED" in r.output
    d = json.loads(runner.invoke(app, ["plan", APL, "--draws", "40", "-f", "json"]).output)
    assert d["recommended"] is False and d["contraindications"]


def test_plan_from_stdin_and_collection():
    text = Path(AML).read_text(encoding="utf-8")
    r = runner.invoke(app, ["plan", "-", "--goal", "car-t", "--cd3-per-ul", "800", "-f", "json", "--draws", "40"], input=text)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["collection"]["marker"] == "CD3+"


@pytest.mark.parametrize("args", [
    ["plan", "/no/such/case.yaml"],
    ["plan", AML, "--blood-volumes", "9"],
    ["plan", AML, "--goal", "stem-cells"],
    ["plan", AML, "--access", "maybe"],
    ["simulate", AML, "--hours-after", "-3"],
    ["simulate", AML, "--draws", "0"],
    ["simulate", AML, "--plot", "chart.pdf"],
])
def test_bad_input_exits_2_without_traceback(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit)


@pytest.mark.parametrize("args, option", [
    (["plan", AML, "--target", "inf"], "--target"),  # was an OverflowError traceback
    (["plan", AML, "--goal", "stem-cells", "--target", "nan", "--cd34-per-ul", "50"], "--target"),  # ValueError
    (["plan", AML, "--goal", "stem-cells", "--target", "5", "--cd34-per-ul", "50", "--recipient-weight-kg", "nan"],
     "--recipient-weight-kg"),  # ValueError traceback
    (["plan", AML, "--observed-pre", "200", "--observed-post", "100", "--observed-volume-l", "-1"], "--observed-volume-l"),
    (["simulate", AML, "--blood-volumes", "inf"], "--blood-volumes"),
])
def test_a_number_option_that_is_not_finite_and_positive_is_named(args, option):
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and not isinstance(r.exception, (OverflowError, ValueError))
    assert f"{option}: got" in " ".join(r.output.split()) and "a finite number above 0" in " ".join(r.output.split())


def test_simulate_json_and_plots(tmp_path):
    r = runner.invoke(app, ["simulate", AML, "--draws", "200", "--hours-after", "24", "-f", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert len(d["times_min"]) == len(d["wbc_10e9_per_l"]["median"])
    assert d["wbc_10e9_per_l"]["p05"][-1] <= d["wbc_10e9_per_l"]["median"][-1] <= d["wbc_10e9_per_l"]["p95"][-1]
    assert {"post_wbc_10e9_per_l", "pct_reduction"} <= set(d["summary"])
    pytest.importorskip("matplotlib")
    png = tmp_path / "c.png"
    r = runner.invoke(app, ["simulate", AML, "--draws", "100", "--plot", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pytest.importorskip("plotly")
    html = tmp_path / "c.html"
    r = runner.invoke(app, ["simulate", AML, "--draws", "100", "--sessions", "2", "--plot", str(html)])
    assert r.exit_code == 0, r.output
    page = html.read_text("utf-8")
    # plotly.js inlined (4+ MB), no <script src=...> from a CDN
    assert "<script src=" not in page and "<script" in page and len(page) > 1_000_000


def test_cli_and_api_simulate_return_the_same_course():
    """One summary for every surface: `leukos simulate --format json` and /api/simulate's adapter both
    return simulate_course(...).to_dict() (the API adds the plan's citations). With one draw (the median
    parameters) the course is deterministic, so the two must agree value for value."""
    from leukos.cli.inputs import read_case
    from leukos.service.apheresis_adapter import simulate_dict

    r = runner.invoke(app, ["simulate", AML, "--draws", "1", "--hours-after", "12", "-f", "json"])
    assert r.exit_code == 0, r.output
    cli = json.loads(r.output)
    k = kb()
    api = json.loads(json.dumps(simulate_dict(read_case(AML, k), {"draws": 1, "hours_after": 12.0}, k)))
    assert api.pop("citations")
    assert api == cli
    # the summary's end-of-run count is the course's value at the end of the session
    end = cli["times_min"].index(min(cli["times_min"], key=lambda t: abs(t - cli["session_ends_min"][0])))
    assert abs(cli["wbc_10e9_per_l"]["median"][end] - cli["summary"]["post_wbc_10e9_per_l"]["median"]) < 0.5
    assert "next_morning_wbc_10e9_per_l" in api["summary"]


def test_calibrate_command_reports_fit():
    r = runner.invoke(app, ["calibrate", "--data", str(CALIBRATION_CSV), "--draws", "40", "-f", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert len(d["rows"]) == 5 and "citrate_check" in d


def test_core_is_a_leaf():
    code = ("import sys, leukos.apheresis, leukos.apheresis.calibrate; "
            "bad = [m for m in ('typer','rich','fastapi','starlette','jinja2','duckdb','matplotlib','plotly') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_plan_text_for_collection_and_update():
    r = runner.invoke(app, ["plan", AML, "--goal", "stem-cells", "--cd34-per-ul", "15", "--target", "4", "--draws", "40"])
    assert r.exit_code == 0, r.output
    assert "V = target / (CE2 × precount)" in r.output and "one session does NOT reach the target" in r.output
    assert "Collection days" in r.output and "chance the target is reached by day 1" in r.output
    r = runner.invoke(app, ["plan", AML, "--observed-pre", "250", "--observed-post", "190", "--draws", "40"])
    assert r.exit_code == 0, r.output
    assert "Next session, learned from the completed one" in r.output and "completed session: 250 → 190" in r.output


def test_plan_text_is_the_order_sheet_in_clinical_words():
    """The CLI prints the web page's order sheet: labelled rows, no Python values or code names."""
    r = runner.invoke(app, ["plan", AML, "--draws", "60"])
    assert r.exit_code == 0, r.output
    for label in ("Total blood volume (TBV)", "Volume to process", "Citrate dose", "Calcium prophylaxis",
                  "WBC fall expected from published sessions", "Safety checklist", "Prescriber:"):
        assert label in r.output
    assert not re.search(r"\{'|\['|\b(True|False|None)\b|_10e9_|disease kinetics '", r.output), r.output


def test_calcium_warning_uses_the_5th_percentile_and_names_safer_options():
    """A plan whose lowest-iCa 5th percentile falls below the symptom threshold without prophylaxis warns and names
    the listed options that keep it above; choosing one of them silences the warning."""
    from leukos.apheresis import PlanOptions, plan_leukapheresis
    from leukos.cli.inputs import read_case
    from leukos.knowledge import load_knowledge

    kb = load_knowledge()
    case = read_case(AML, kb)
    thr = kb.value("apheresis.ica_symptom_threshold_mmol_per_l")
    plan = plan_leukapheresis(case, PlanOptions(calcium_prophylaxis="none", draws=200), kb)
    opts = {o["mode"]: o["nadir_ionized_calcium_mmol_per_l"] for o in plan.calcium_options}
    assert opts["none"]["p05"] < thr, "the example must exercise the warning"
    warn = [w for w in plan.warnings if "ionised calcium" in w and "1 in 20" in w]
    assert len(warn) == 1
    safe = [m for m, n in opts.items() if m != "none" and n["p05"] >= thr]
    assert safe and all(next(o["description"] for o in plan.calcium_options if o["mode"] == m) in warn[0] for m in safe)
    best = max(opts, key=lambda m: opts[m]["p05"])
    plan2 = plan_leukapheresis(case, PlanOptions(calcium_prophylaxis=best, draws=200), kb)
    assert not [w for w in plan2.warnings if "ionised calcium" in w and ("1 in 20" in w or "below" in w)]


def test_the_outcome_prediction_says_how_it_did_out_of_sample():
    """The sheet states the stored leave-one-source-out figures of the model and of ASFA's midpoint, so a clinician
    knows how far to trust the median."""
    from leukos.apheresis import PlanOptions, plan_leukapheresis
    from leukos.cli.inputs import read_case
    from leukos.knowledge import load_knowledge

    kb = load_knowledge()
    v = kb.table("apheresis_outcome_fit")["validation"]["wbc"]
    res = v[v["chosen"]["structure"].replace("+", "_")]
    text = plan_leukapheresis(read_case(AML, kb), PlanOptions(draws=50), kb).predicted["wbc_outcome_model"]["validated"]
    assert f"on {int(res['model']['n'])} published sessions" in text
    assert f"{res['model']['mae_pct_points']:g} percentage points" in text and f"{res['asfa_45']['mae_pct_points']:g}" in text
    better = res["model"]["mae_pct_points"] < res["asfa_45"]["mae_pct_points"]
    assert ("(better than ASFA" in text) == better and ("no better than ASFA" in text) == (not better)
