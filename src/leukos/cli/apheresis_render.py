"""Text rendering of plans and simulations: an apheresis order sheet with the arithmetic shown."""

from __future__ import annotations

from typing import Any

import numpy as np
import typer

DISCLAIMER = "leukos supports clinical decisions; it does not replace clinical judgement. Not a medical device."


def _b(d: dict | None, unit: str = "") -> str:
    if not d:
        return "n/a"
    if "p05" in d:
        return f"{d['median']:g}{unit} (90 % band {d['p05']:g}-{d['p95']:g})"
    return f"{d['median']:g}{unit}"


def render_plan(p, kb) -> None:
    """The order sheet the web page shows, as labelled lines: what to do first, the working indented under it."""
    from leukos.present import order_sheet

    d = p.to_dict()
    e = typer.echo
    title = {"depletion": "THERAPEUTIC LEUKOCYTAPHERESIS (WBC depletion)", "stem-cells": "PBSC COLLECTION (CD34+)",
             "car-t": "LYMPHOCYTE COLLECTION FOR CAR-T (CD3+)"}[p.goal]
    sheet = order_sheet(d, kb, indicated=p.collection or p.recommended)
    e(f"{title} - plan for case {p.case_id or '(no id)'}")
    e("=" * 78)
    if p.contraindications:
        e("*** NOT RECOMMENDED ***")
        for c in p.contraindications:
            e(f"  CONTRAINDICATION: {c}")
        e("  The numbers below are shown for reference only.")
    e(sheet.status)
    for label, lines, working in sheet.rows:
        e(f"\n{label}")
        for x in lines:
            if x:
                e(f"   {x}")
        for x in working:
            if x:
                e(f"      · {x}")
    if sheet.calcium:
        e("\nCalcium prophylaxis options: predicted lowest ionised calcium during the run, median (5th percentile)")
        for o in sheet.calcium:
            mark = "->" if o["selected"] else "  "
            src = f"  [{o['sources']}]" if o["sources"] else ""
            e(f"   {mark} {o['description']:50s} {o['dose']:>12s}  {o['nadir']}{src}")
    if sheet.checklist:
        e("\nSafety checklist")
        for c in sheet.checklist:
            e(f" [ ] {c['risk']}: watch {c['watch']}.")
            e(f"     threshold: {c['threshold']}; action: {c['action']}")
    if sheet.warnings:
        e("\nWarnings")
        for x in sheet.warnings:
            e(f" ! {x}")
    if sheet.unverified:
        e("\nUnverified inputs of this plan (check before relying on them)")
        for x in sheet.unverified:
            e(f" ? {x}")
    e(f"\nReferences: {sheet.references}")
    if sheet.reference_only:
        e("Reference only - not to be signed as an order.")
    else:
        e("Prescriber: ______________________   Signature: ______________   Date/time: ____________")
    e(f"ruleset {d['ruleset_version']}, leukos {d['leukos_version']}. {DISCLAIMER}")


def render_simulation(data: dict[str, Any], p) -> None:
    e = typer.echo
    if p.contraindications:
        e("*** LEUKAPHERESIS NOT RECOMMENDED: " + " ".join(p.contraindications))
    e(f"Simulated course: {data['blood_volumes_processed']} TBV over {data['duration_min']} min, {data['draws']} draws")
    t = np.asarray(data["times_min"])
    wb = data["wbc_10e9_per_l"]
    ica = data["ionized_calcium_mmol_per_l"]
    plt = data["platelets_10e9_per_l"]
    picks = sorted(set(np.searchsorted(t, [0, *data["session_ends_min"], t[-1]]).tolist()))
    step = max(1, len(t) // 12)
    rows = sorted(set(list(range(0, len(t), step)) + picks))
    e(f"{'time':>10} {'WBC ×10⁹/L, median [5th-95th]':>30} {'iCa mmol/L':>12} {'platelets ×10⁹/L':>18}")
    for i in rows:
        h = t[i] / 60.0
        pl = f"{plt['median'][i]:18.0f}" if plt else f"{'not modelled':>18}"
        e(f"{h:8.1f} h {wb['median'][i]:13.1f} [{wb['p05'][i]:6.1f}-{wb['p95'][i]:6.1f}] {ica['median'][i]:12.2f} {pl}")
    s = data["summary"]
    e(f"End of procedure: WBC {_b(s['post_wbc_10e9_per_l'])} ×10⁹/L; nadir iCa "
      f"{_b(s['nadir_ionized_calcium_mmol_per_l'], ' mmol/L')}; product (all sessions) {_b(data['product']['volume_ml'], ' mL')}")
    if "next_morning_wbc_10e9_per_l" in s:
        e(f"Next morning ({s['next_morning_hours_after_end']:g} h after the end): WBC {_b(s['next_morning_wbc_10e9_per_l'])} ×10⁹/L "
          "(refill and regrowth priors, not validated)")
    if "plot" in data:
        e(f"Chart written to {data['plot']}")
    for x in data["warnings"]:
        e(f" ! {x}")
    e(DISCLAIMER)


_METHOD_LABEL = {"model": "leukos model", "training_mean": "training-fold mean", "training_median": "training-fold median",
                 "constant_35": "constant 35 %",
                 "asfa_45": "ASFA midpoint 45 %", "device_profile": "device CE2 profile"}
_WHAT = {"wbc": "WBC fall per session (%)", "platelets": "Platelet fall per procedure (%)",
         "ce": "Collection efficiency (%), yield error in log space"}


def _bd(p: dict[str, Any]) -> str:
    return f"{p['median']:5.1f}" + (f" [{p['band'][0]:5.1f}-{p['band'][1]:5.1f}]" if p.get("band") else " " * 14)


def render_validation(v: dict[str, Any], study: dict[str, Any]) -> None:
    """Leave-one-source-out tables: per row (chosen structure) and the summary of every structure."""
    e = typer.echo
    for what in ("wbc", "platelets", "ce"):
        chosen = v["chosen"][what]
        tab = v[what][chosen]
        methods = [m for m in tab["summary"] if not m.startswith("_")]
        e(f"\n{_WHAT[what]} - leave-one-source-out ({tab['summary']['_sources']['n']} sources), structure '{chosen}'")
        e(f"{'row':6s} {'source':6s} {'observed':>8s}  " + "  ".join(f"{_METHOD_LABEL[m]:>26s}" for m in methods))
        for r in tab["rows"]:
            obs = "n/a" if r["observed"] is None else f"{r['observed']:.1f}"
            flag = "" if r["scored"] else f"   (shown, not scored: {r['reason']})"
            e(f"{r['id']:6s} {r['source']:6s} {obs:>8s}  " + "  ".join(f"{_bd(r[m]):>26s}" for m in methods) + flag)
        e("summary (scored rows):")
        for s, t in v[what].items():
            for m in methods:
                sm = t["summary"][m]
                err = sm.get("mae_pct_points", sm.get("mean_abs_log_error"))
                med = sm.get("median_abs_error_pct_points", sm.get("median_abs_log_error"))
                if m != "model" and s != chosen:
                    continue
                label = f"{_METHOD_LABEL[m]}" + (f" ({s})" if m == "model" else "")
                e(f"  {label:34s} n {sm['n']:2d}  mean error {err}  median error {med}  "
                  f"90 % coverage {sm['coverage_90']}  band width {sm['mean_band_width']}")
    e("\nOther centres (pooled model) and model variants (chosen structure) tried - reported, never chosen automatically:")
    for what, by in v.get("candidates", {}).items():
        for name, sm in by.items():
            e(f"  {what:10s} {name:26s} mean error {sm['mae_pct_points']}  median error {sm['median_abs_error_pct_points']}  "
              f"90 % coverage {sm['coverage_90']}  band width {sm['mean_band_width']}")
    e("\n90 % bands by treatment of the between-source SD (chosen structures; 'posterior' is used):")
    for what, by in v.get("bands", {}).items():
        for b, sm in by.items():
            e(f"  {what:10s} {b:10s} coverage {sm['coverage_90']:6s} band width {sm['mean_band_width']}")
    e("\nPer-patient learning (simulation with known truth, patients drawn from the fitted population):")
    e(f"  next-session MAE: population {study['mae_population_pct_points']} -> after one recorded session "
      f"{study['mae_after_update_pct_points']} percentage points; 90 % coverage {study['coverage_90_population_pct']} % -> "
      f"{study['coverage_90_after_update_pct']} %; band width {study['band_width_population']} -> {study['band_width_after_update']}")
