"""Commands of the leukapheresis core: plan, simulate, calibrate. Parse, call the core, render."""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path

import typer

from leukos.cli.inputs import parse_overrides, read_case
from leukos.cli.main import app, user_errors
from leukos.errors import ErrorDetail, LeukosUserError


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


class Goal(str, Enum):
    depletion = "depletion"
    stem_cells = "stem-cells"
    car_t = "car-t"


def packaged_data(name: str) -> Path:
    """Path of a data file bundled with leukos (knowledge/data/apheresis)."""
    from importlib import resources

    return Path(str(resources.files("leukos.knowledge").joinpath("data", "apheresis", name)))


def _echo_json(data) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _options(goal: str, target, blood_volumes, volume_l, device, tbv_method, calcium, liver, access,
             cd34, cd3, recipient_kg, draws, observed=(None, None, None)):
    from leukos.apheresis import PlanOptions

    kw = {}
    if goal == "depletion":
        kw["target_wbc_10e9_per_l"] = target
    elif goal == "stem-cells":
        kw["target_cd34_10e6_per_kg"] = target
    else:
        kw["target_cd3_10e9"] = target
    if draws is not None and not (1 <= draws <= 100_000):
        raise LeukosUserError(ErrorDetail("--draws", draws, "1-100000", "use e.g. --draws 1000"))
    return PlanOptions(goal=goal, blood_volumes=blood_volumes, volume_l=volume_l, device=device, tbv_method=tbv_method,
                       calcium_prophylaxis=calcium, liver_dysfunction=liver,
                       vascular_access={"yes": True, "no": False}.get(access) if access else None,
                       cd34_per_ul=cd34, cd3_per_ul=cd3, recipient_weight_kg=recipient_kg, draws=draws,
                       observed_pre_wbc_10e9_per_l=observed[0], observed_post_wbc_10e9_per_l=observed[1],
                       observed_volume_l=observed[2], **kw)


def _positive_numbers(options: dict[str, float | None]) -> None:
    """Refuse a number option that is not a finite number above 0, naming the option: NaN and infinity
    pass every later range check that is written as a refusal (NaN > 0 is false, so `not nan > 0`
    refuses, but `inf > 0` passes into arithmetic), and the planner's messages name its own fields."""
    problems = [ErrorDetail(name, value, "a finite number above 0", "give a positive number without a unit (see --help for its unit)")
                for name, value in options.items() if value is not None and not (math.isfinite(value) and value > 0)]
    if problems:
        raise LeukosUserError(problems, title="The input could not be used")


_TARGET_HELP = ("Target: WBC ×10⁹/L for depletion (default 100), CD34+ ×10⁶/kg for stem-cells (required), "
                "CD3+ ×10⁹ for car-t (default 2).")


@app.command("plan")
@user_errors
def plan_cmd(
    case: str = typer.Argument(..., help="Case file (JSON/YAML or FHIR Bundle), or - for stdin."),
    goal: Goal = typer.Option(Goal.depletion, "--goal", help="depletion | stem-cells | car-t"),
    target: float | None = typer.Option(None, "--target", help=_TARGET_HELP),
    blood_volumes: float | None = typer.Option(None, "--blood-volumes", help="Blood volumes to process (default 2)."),
    volume_l: float | None = typer.Option(None, "--volume-l", help="Whole-blood volume to process, litres."),
    device: str | None = typer.Option(None, "--device", help="Device profile (spectra_optia_wbcd, cobe_spectra_lvl, spectra_optia_cmnc)."),
    tbv_method: str | None = typer.Option(None, "--tbv-method", help="auto | nadler | lemmens | ml_per_kg"),
    calcium: str | None = typer.Option(None, "--calcium", help="none | gluconate_per_litre | continuous"),
    liver: bool = typer.Option(False, "--liver-dysfunction", help="Halve citrate clearance and the citrate limit."),
    access: str | None = typer.Option(None, "--access", help="yes | no: an apheresis-capable line is in place."),
    cd34: float | None = typer.Option(None, "--cd34-per-ul", help="Pre-collection CD34+ cells/µL (stem-cells)."),
    cd3: float | None = typer.Option(None, "--cd3-per-ul", help="Pre-collection CD3+ cells/µL (car-t)."),
    recipient_kg: float | None = typer.Option(None, "--recipient-weight-kg", help="Recipient weight (default: the patient)."),
    draws: int | None = typer.Option(None, "--draws", help="Monte Carlo draws behind the predictions."),
    observed_pre: float | None = typer.Option(None, "--observed-pre", help="Completed session: WBC before (×10⁹/L)."),
    observed_post: float | None = typer.Option(None, "--observed-post", help="Completed session: WBC after (×10⁹/L)."),
    observed_volume_l: float | None = typer.Option(None, "--observed-volume-l", help="Completed session: litres processed."),
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f"),
    settings: list[str] | None = typer.Option(None, "--set", help="Override a knowledge parameter key=value."),
) -> None:
    """Plan a leukapheresis (or a PBSC / CAR-T collection): volumes, flows, citrate, predictions, checklist."""
    from leukos.apheresis import plan_leukapheresis
    from leukos.cli.apheresis_render import render_plan
    from leukos.knowledge import load_knowledge

    if access not in (None, "yes", "no"):
        raise LeukosUserError(ErrorDetail("--access", access, "yes or no", "say whether a line is in place"))
    _positive_numbers({"--target": target, "--blood-volumes": blood_volumes, "--volume-l": volume_l,
                       "--cd34-per-ul": cd34, "--cd3-per-ul": cd3, "--recipient-weight-kg": recipient_kg,
                       "--observed-pre": observed_pre, "--observed-post": observed_post,
                       "--observed-volume-l": observed_volume_l})
    kb = load_knowledge(parse_overrides(settings))
    c = read_case(case, kb)
    p = plan_leukapheresis(c, _options(goal.value, target, blood_volumes, volume_l, device, tbv_method, calcium, liver,
                                       access, cd34, cd3, recipient_kg, draws,
                                       (observed_pre, observed_post, observed_volume_l)), kb)
    if fmt is OutputFormat.json:
        _echo_json(p.to_dict())
    else:
        render_plan(p, kb)


@app.command("simulate")
@user_errors
def simulate_cmd(
    case: str = typer.Argument(..., help="Case file, or - for stdin."),
    blood_volumes: float | None = typer.Option(None, "--blood-volumes", help="Blood volumes to process (default 2)."),
    volume_l: float | None = typer.Option(None, "--volume-l", help="Whole-blood volume to process, litres."),
    hours_after: float = typer.Option(24.0, "--hours-after", help="Hours to follow after the procedure (0-240)."),
    sessions: int = typer.Option(1, "--sessions", help="Daily sessions to simulate (1-10)."),
    draws: int = typer.Option(1000, "--draws", help="Monte Carlo draws (1 = the median parameters only)."),
    calcium: str | None = typer.Option(None, "--calcium", help="none | gluconate_per_litre | continuous"),
    plot: Path | None = typer.Option(None, "--plot", help="Write a chart: FILE.png (matplotlib) or FILE.html (Plotly, inlined)."),
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f"),
    settings: list[str] | None = typer.Option(None, "--set", help="Override a knowledge parameter key=value."),
) -> None:
    """Simulate the WBC, ionised calcium and platelet course during and after the procedure, with bands."""
    from leukos.apheresis import PlanOptions, plan_leukapheresis, simulate_course
    from leukos.cli.apheresis_render import render_simulation
    from leukos.knowledge import load_knowledge

    _positive_numbers({"--blood-volumes": blood_volumes, "--volume-l": volume_l})
    problems = []
    if not (0 <= hours_after <= 240):
        problems.append(ErrorDetail("--hours-after", hours_after, "0-240 hours", "follow at most 10 days"))
    if not (1 <= sessions <= 10):
        problems.append(ErrorDetail("--sessions", sessions, "1-10", "simulate at most 10 daily sessions"))
    if not (1 <= draws <= 100_000):
        problems.append(ErrorDetail("--draws", draws, "1-100000", "use e.g. --draws 1000"))
    if plot is not None and plot.suffix.lower() not in (".png", ".html"):
        problems.append(ErrorDetail("--plot", str(plot), "a .png or .html file name", "e.g. --plot course.png"))
    if problems:
        raise LeukosUserError(problems, title="Invalid simulation options")
    kb = load_knowledge(parse_overrides(settings))
    c = read_case(case, kb)
    p = plan_leukapheresis(c, PlanOptions(blood_volumes=blood_volumes, volume_l=volume_l, calcium_prophylaxis=calcium,
                                          draws=min(draws, 400)), kb)
    diag = c.diagnosis.value if c.diagnosis is not None else None
    course = simulate_course(p, kb, diagnosis=diag, draws=draws, hours_after=hours_after, sessions=sessions)
    tr, data = course.trajectory, course.to_dict()
    if plot is not None:
        from leukos.cli.apheresis_plot import write_plot

        write_plot(tr, p, kb, plot)
        data["plot"] = str(plot)
    if fmt is OutputFormat.json:
        _echo_json(data)
    else:
        render_simulation(data, p)


@app.command("calibrate")
@user_errors
def calibrate_cmd(
    data: Path | None = typer.Option(None, "--data", help="Calibration CSV (default: the published data bundled with leukos)."),
    more_data: Path | None = typer.Option(None, "--more-data", help="Further outcome rows, same columns (default: bundled)."),
    yields_data: Path | None = typer.Option(None, "--yields-data", help="Collection-yield CSV (default: bundled)."),
    cv: bool = typer.Option(False, "--cv", help="Leave-one-source-out validation against the constant baselines."),
    draws: int = typer.Option(300, "--draws", help="Monte Carlo draws of the simulator fit (citrate, platelets)."),
    write: bool = typer.Option(False, "--write", help="Write the fits into the package's knowledge data."),
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f"),
) -> None:
    """Fit the leukapheresis models to the published data; with --cv, validate them out of sample."""
    from leukos.apheresis.calibrate import calibrate, calibration_toml
    from leukos.apheresis.outcome_data import read_outcome_rows
    from leukos.apheresis.patient import patient_prior, simulation_study
    from leukos.apheresis.validate import final_fits, outcome_fit_toml, validate_all
    from leukos.cli.apheresis_render import render_validation
    from leukos.knowledge import load_knowledge

    if not (10 <= draws <= 20_000):
        raise LeukosUserError(ErrorDetail("--draws", draws, "10-20000", "use e.g. --draws 300"))
    paths = {"calibration": data or packaged_data("leukapheresis_calibration.csv"),
             "more": more_data or packaged_data("leukapheresis_outcomes_more.csv"),
             "yields": yields_data or packaged_data("collection_yields.csv")}
    raw, tables = {}, {}
    for key, path in paths.items():
        raw[key], tables[key] = _read_csv(path, key)
    kb = load_knowledge()
    od = read_outcome_rows(kb, tables)
    out: dict = {"problems": [p.text() for p in od.problems]}
    validation = validate_all(kb, od) if (cv or write) else None
    if validation is not None:
        fits = final_fits(kb, od, validation["chosen"])
        study = simulation_study(patient_prior(kb, diagnosis=None, fit=fits["wbc"]),
                                 n_patients=int(kb.value("apheresis_outcomes.simulation_study_patients")))
        out["validation"] = {what: {s: {"summary": t.summary, "rows": list(t.rows)} for s, t in validation[what].items()}
                             for what in ("wbc", "platelets", "ce")} | {"chosen": validation["chosen"], "bands": validation["bands"],
                                                                  "candidates": validation["candidates"]}
        out["per_patient_learning"] = study
    res = None
    if not cv or write:
        res = calibrate(kb, tables["calibration"], draws=draws)
        out |= {"params": dict(res.params), "rows": [dict(r) for r in res.rows],
                "platelet_rows": [dict(r) for r in res.platelet_rows], "citrate_check": dict(res.citrate)}
    if write:
        import hashlib
        from importlib import resources

        rules = Path(str(resources.files("leukos.knowledge").joinpath("data", "rules")))
        (rules / "apheresis_calibration.toml").write_text(
            calibration_toml(res, data_sha256=hashlib.sha256(raw["calibration"]).hexdigest()), "utf-8")
        ann = kb.table("apheresis_outcomes")
        cites = {"wbc": sorted({c for r in ann["wbc_rows"].values() if r["scored"] for c in r["citations"]}),
                 "platelets": sorted({c for r in ann["platelet_rows"].values() for c in r["citations"]}),
                 "ce": ["sumii2023", "transfusion2012_infants", "transfusion2014_lowweight", "crudece2025", "sortit2019",
                        "transfusion2018_cart_children", "jca2018_cd3"]}
        (rules / "apheresis_outcome_fit.toml").write_text(outcome_fit_toml(
            fits, validation, data_sha256={k: hashlib.sha256(v).hexdigest() for k, v in raw.items()},
            study=study, citations=cites), "utf-8")
    if fmt is OutputFormat.json:
        _echo_json(out)
        return
    for p in od.problems:
        typer.echo(f"skipped: {p.text()}", err=True)
    if validation is not None:
        render_validation(out["validation"], out["per_patient_learning"])
    if validation is None:
        chosen = dict(kb.table("apheresis_outcome_fit")["structure"])
        fits = final_fits(kb, od, chosen)
        typer.echo("Outcome model fitted to all rows (structures from the last validation; run --cv to validate):")
        for what, f in fits.items():
            typer.echo(f"  {what:10s} {f.structure:8s} mean (log or logit scale) {f.mu:.3f}  between-source SD {f.tau:.3f}  "
                       f"between-procedure SD {f.sigma:.3f}  rows {f.n_rows}  sources {len(f.sources)}")
    if res is not None:
        typer.echo("\nSimulator citrate fit (status U, citation leukos_calibration):")
        for k, v in res.params.items():
            typer.echo(f"  {k:20s} {v:.4g}")
        cc = res.citrate
        typer.echo(f"  citrate check: {cc['setting']}: iCa fall observed {cc['observed_ica_fall_pct']} %, "
                   f"predicted {cc['predicted_ica_fall_pct']}")


def _read_csv(path: Path, what: str) -> tuple[bytes, list[dict[str, str]]]:
    import csv

    if not path.is_file():
        raise LeukosUserError(ErrorDetail(f"{what} data", str(path), "an existing CSV file", "check the path"))
    raw = path.read_bytes()
    if len(raw) > 5 << 20:
        raise LeukosUserError(ErrorDetail(f"{what} data", str(path), "a CSV under 5 MB", "split or trim the file"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LeukosUserError(ErrorDetail(f"{what} data", str(path), "UTF-8 text", f"re-save the file as UTF-8 ({e.reason})")) from None
    return raw, list(csv.DictReader(text.splitlines()))
