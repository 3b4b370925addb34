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
    d = p.to_dict()
    e = typer.echo
    title = {"depletion": "THERAPEUTIC LEUKOCYTAPHERESIS (WBC depletion)", "stem-cells": "PBSC COLLECTION (CD34+)",
             "car-t": "LYMPHOCYTE COLLECTION FOR CAR-T (CD3+)"}[p.goal]
    e(f"{title} - plan for case {p.case_id or '(no id)'}")
    e("=" * 78)
    if p.contraindications:
        e("*** NOT RECOMMENDED ***")
        for c in p.contraindications:
            e(f"  CONTRAINDICATION: {c}")
        e("  The numbers below are shown for reference only.")
    elif not p.recommended:
        e("*** Not indicated by the assessment: plan for reference only ***")
    w = d["working"]
    e("\n1. Blood volume")
    tbv = w["tbv"]
    e(f"   TBV {d['tbv_l']} L by {d['tbv_method']}: {tbv['formula']}")
    e(f"   inputs: {tbv['working']}")
    fl = w["flows"]
    e(f"\n2. Device: {fl['device_label']}")
    e(f"   Volume to process: {fl['volume']}")
    e(f"   {fl['flows']}")
    e(f"   {fl['whole_blood_flow']}")
    e(f"   Duration: {fl['duration']}")
    e("\n3. Anticoagulant and calcium")
    e(f"   ACD-A {d['acd_a_ml_per_min']} mL/min (inlet:AC {d['inlet_to_ac_ratio']:g}:1)")
    e(f"   {fl['citrate_dose']}  (symptom-free below {d['citrate_limit_mg_per_kg_per_min']} mg/kg/min)")
    e(f"   {fl['citrate_returned']}")
    e("   Calcium prophylaxis (predicted nadir ionised calcium, median [5th pct]):")
    for o in d["calcium_prophylaxis"]["options"]:
        mark = "->" if o["mode"] == d["calcium_prophylaxis"]["selected"] else "  "
        n = o["nadir_ionized_calcium_mmol_per_l"]
        e(f"   {mark} {o['description']:50s} {o['calcium_mmol_per_h']:5.2f} mmol/h  nadir {n['median']} [{n['p05']}] mmol/L")
    e(f"   symptom threshold iCa < {kb.value('apheresis.ica_symptom_threshold_mmol_per_l')} mmol/L")
    e("\n4. Extracorporeal volume")
    e(f"   {w['ecv']}  -> RBC prime: {'YES' if d['prime_with_rbc'] else 'no'}")
    if p.collection:
        c = d["collection"]
        e(f"\n5. Collection target: {c['target']}")
        e(f"   {c['formula']}")
        e(f"   CE2 {c['ce2']:g} (published range {c['ce2_range'][0]:g}-{c['ce2_range'][1]:g}): "
          f"volume {c['volume_needed_range_l'][0]}-{c['volume_needed_range_l'][1]} L")
        e(f"   {c['blood_volumes_needed']} TBV needed; one session reaches the target: "
          f"{'yes' if c['one_session_reaches_target'] else 'NO'} (sessions: {c['sessions_needed']})")
        md = c.get("multi_day_plan")
        if md:
            probs = ", ".join(f"day {i + 1}: {v:g} %" for i, v in enumerate(md["probability_by_day_pct"]))
            e(f"   Daily plan: {md['volume_per_day_l']} L ({md['blood_volumes_per_day']} TBV, {md['duration_per_day_min']} min) "
              f"per day; days needed {md['days_needed_median']} (median); probability of reaching the target by {probs}")
        e(f"   Expected yield at {c['planned_blood_volumes']} TBV: {c['expected_yield']}")
        for n in c["notes"]:
            e(f"   note: {n}")
    pr = d["predicted"]
    e(f"\n{'6' if p.collection else '5'}. Predicted ({pr['draws']} Monte Carlo draws, {pr['at']})")
    if "post_wbc_10e9_per_l" in pr:
        e(f"   WBC after: {_b(pr['post_wbc_10e9_per_l'])} ×10⁹/L; fall {_b(pr['pct_reduction'], ' %')}")
        e(f"   product: {_b(pr['product_volume_ml'], ' mL')}, {_b(pr['product_cells_10e9'])} ×10⁹ cells; "
          f"CE1 {_b(pr['ce1_pct'], ' %')}")
    e(f"   nadir ionised calcium: {_b(pr['nadir_ionized_calcium_mmol_per_l'], ' mmol/L')}")
    e(f"   platelets after: {_b(pr.get('platelets_post_10e9_per_l'))} ×10⁹/L;  Hb after: {_b(pr.get('hemoglobin_post_g_per_dl'))} g/dL")
    st = d.get("sessions_to_target")
    if st:
        e(f"   Sessions to reach ≤ {st['target_wbc_10e9_per_l']:g} ×10⁹/L (daily): median {st['median']} "
          f"(90 % band {st['p05']}-{st['p95']}); cumulative probability by session: {st['probability_by_session']} %")
    oc = pr.get("wbc_outcome_model")
    if oc:
        e(f"   Outcome model ({oc['based_on']}, {oc['blood_volumes']} TBV): fall {_b(oc['pct_fall'], ' %')}; "
          f"WBC at the end of the run {_b(oc['end_of_run_wbc_10e9_per_l'])}, next morning "
          f"{_b(oc['next_morning_wbc_10e9_per_l'])} ×10⁹/L")
        e(f"     ({oc['validated']})")
    up = d.get("patient_update")
    if up:
        ob = up["observed"]
        e(f"   Updated on the completed session ({ob['pre_wbc_10e9_per_l']:g} -> {ob['post_wbc_10e9_per_l']:g} ×10⁹/L at "
          f"{ob['blood_volumes']} TBV; population band for it {_b(up['completed_session_population_band'])}):")
        own, pop = up["next_session_this_patient"], up["next_session_population"]
        e(f"     next session ({own['blood_volumes']} TBV from {own['pre_wbc_10e9_per_l']:g}): fall {_b(own['pct_fall'], ' %')}, "
          f"end of run {_b(own['end_of_run_wbc_10e9_per_l'])} ×10⁹/L (population: {_b(pop['end_of_run_wbc_10e9_per_l'])})")
    e("\nSafety checklist")
    for c in d["checklist"]:
        e(f" - {c['risk']}: watch {c['watch']}.")
        e(f"     threshold: {c['threshold']}; action: {c['action']}")
    if d["warnings"]:
        e("\nWarnings")
        for x in d["warnings"]:
            e(f" ! {x}")
    if d["unverified"]:
        e("\nUnverified inputs (status U; check before relying on them)")
        for x in d["unverified"]:
            e(f" ? {x}")
    e("\nReferences: " + ", ".join(kb.citation(k).short for k in d["citations"][:12]) + (" …" if len(d["citations"]) > 12 else ""))
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
    e(f"{'time':>10} {'WBC median [5-95]':>26} {'iCa mmol/L':>12} {'platelets':>10}")
    for i in rows:
        h = t[i] / 60.0
        pl = f"{plt['median'][i]:10.0f}" if plt else f"{'n/a':>10}"
        e(f"{h:8.1f} h {wb['median'][i]:9.1f} [{wb['p05'][i]:6.1f}-{wb['p95'][i]:6.1f}] {ica['median'][i]:12.2f} {pl}")
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
