"""Plan a therapeutic leukocytapheresis or a collection (PBSC, CAR-T lymphocytes), with the arithmetic shown.

``plan_leukapheresis(case, options, kb, assessment=None) -> ProcedurePlan`` (docs/outputs.md 'plan').
Flows (docs/apheresis.md, Planner): Q_AC from the AC ceiling per litre of TBV, Q_in = Q_AC·R,
Q_wb = Q_in·(R − 1)/R, duration = volume / Q_wb, citrate = Q_AC × 21.7 mg/mL / kg.
Contraindications come from the assessment (APL, indication) — leukapheresis is never
recommended when APL is known or suspected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import numpy as np

from leukos import __version__
from leukos.apheresis.blood_volume import estimate_tbv
from leukos.apheresis.model import PatientState
from leukos.apheresis.patient import (
    ObservedSession,
    disease_group,
    patient_prior,
    predict_next_session,
    update_patient_params,
)
from leukos.apheresis.plan import CALCIUM_MODES, GOALS, PlanOptions, ProcedurePlan, ProcedureSettings
from leukos.apheresis.simulate import (
    kinetics_group,
    sample_params,
    sessions_to_target,
    simulate,
    summarise,
)
from leukos.domain.assessment import Assessment
from leukos.domain.case import Case
from leukos.errors import ErrorDetail, LeukosUserError
from leukos.knowledge import KnowledgeBase

__all__ = ["plan_leukapheresis", "procedure_settings", "patient_state"]


def _p(kb: KnowledgeBase, key: str):
    return kb.value(f"apheresis.{key}")


def _device(kb: KnowledgeBase, name: str) -> dict[str, Any]:
    devices = kb.table("apheresis")["devices"]
    if name not in devices:
        raise LeukosUserError(ErrorDetail("device", name, f"one of {sorted(devices)}", "choose a listed device profile"))
    return devices[name]


def _in(problems: list, field_: str, value: float, lo: float, hi: float, unit: str, fix: str) -> None:
    # compare at 1e-9 relative: a volume capped at the maximum run time must not fail on rounding
    tol = 1e-9 * max(abs(lo), abs(hi), 1.0)
    if not (lo - tol <= value <= hi + tol) or math.isnan(value):
        problems.append(ErrorDetail(field_, round(value, 3) if isinstance(value, float) else value,
                                    f"{lo:g}-{hi:g} {unit}", fix))


def procedure_settings(*, tbv_l: float, weight_kg: float, options: PlanOptions, kb: KnowledgeBase,
                       device_name: str, blood_volumes: float, bv_max: float) -> tuple[ProcedureSettings, dict[str, Any]]:
    """Device flows, duration and citrate for ``blood_volumes`` TBV; returns settings and working.

    Raises LeukosUserError for settings outside the device's ranges (impossible flows/volumes).
    """
    dev = _device(kb, device_name)
    problems: list[ErrorDetail] = []
    bv_min = _p(kb, "blood_volumes_min")
    _in(problems, "blood_volumes", blood_volumes, bv_min, bv_max, "TBV", f"process {bv_min:g}-{bv_max:g} blood volumes")
    w: dict[str, Any] = {"device": device_name, "device_label": dev["label"]}
    ratio = options.inlet_to_ac_ratio if options.inlet_to_ac_ratio is not None else dev["inlet_ac_ratio"]
    lo_r, hi_r = dev.get("inlet_ac_ratio_range", [ratio, ratio])
    _in(problems, "inlet_to_ac_ratio", float(ratio), lo_r, hi_r, "(inlet:AC)", "use a ratio the device allows")
    if "inlet_flow_ml_per_min" in dev:
        q_in = float(dev["inlet_flow_ml_per_min"])
        q_ac = q_in / ratio
        w["flows"] = f"Q_in fixed at {q_in:g} mL/min (device profile); Q_AC = Q_in/R = {q_in:g}/{ratio:g} = {q_ac:.2f} mL/min"
    else:
        ac_rate = options.ac_rate_ml_per_min_per_l_tbv or dev["ac_rate_ml_per_min_per_l_tbv"]
        _in(problems, "ac_rate_ml_per_min_per_l_tbv", float(ac_rate), *dev["ac_rate_range"], "mL/min per L TBV",
            "use an AC infusion rate the device allows")
        q_ac = ac_rate * tbv_l
        q_in = q_ac * ratio
        w["flows"] = (f"Q_AC = {ac_rate:g} mL/min/L × {tbv_l:.2f} L = {q_ac:.2f} mL/min; "
                      f"Q_in = Q_AC × R = {q_ac:.2f} × {ratio:g} = {q_in:.1f} mL/min")
    q_wb = q_in * (ratio - 1) / ratio
    w["whole_blood_flow"] = f"Q_wb = Q_in × (R−1)/R = {q_in:.1f} × {ratio - 1:g}/{ratio:g} = {q_wb:.1f} mL/min"
    vol_l = blood_volumes * tbv_l
    duration = vol_l * 1000.0 / q_wb if q_wb > 0 else float("inf")
    w["volume"] = f"V = {blood_volumes:g} × {tbv_l:.2f} L = {vol_l:.2f} L whole blood (excluding AC)"
    w["duration"] = f"t = V / Q_wb = {vol_l * 1000:.0f} mL / {q_wb:.1f} mL/min = {duration:.0f} min"
    _in(problems, "duration_min", duration, *dev["run_time_range_min"], "min (device run time)",
        "process fewer blood volumes or plan two sessions")
    _in(problems, "volume_to_process_ml", vol_l * 1000.0, *dev["wb_processed_range_ml"], "mL (device range)",
        "check the weight/height and the volume asked")
    if problems:
        raise LeukosUserError(problems, title="The procedure settings are not possible on this device")
    cit_mg_ml = _p(kb, "acd_a_citrate_mg_per_ml")
    cit_mmol_l = _p(kb, "acd_a_citrate_mmol_per_l")
    q_col = float(dev["collect_fraction_of_inlet"]) * q_in
    w["collect"] = (f"Q_collect = {dev['collect_fraction_of_inlet']:g} × Q_in = {q_col:.2f} mL/min "
                    f"(product ≈ {q_col * duration:.0f} mL)")
    cit_ret = q_ac / 1000.0 * cit_mmol_l * (1.0 - q_col / q_in)
    w["citrate_returned"] = (f"R_cit = Q_AC × {cit_mmol_l} mmol/L × (1 − Q_collect/Q_in) = {q_ac:.2f} mL/min × "
                             f"{cit_mmol_l / 1000:.4f} mmol/mL × (1 − {q_col:g}/{q_in:.1f}) = {cit_ret:.3f} mmol/min")
    mode = options.calcium_prophylaxis or _p(kb, "calcium_prophylaxis_default")
    if mode not in CALCIUM_MODES:
        raise LeukosUserError(ErrorDetail("calcium_prophylaxis", mode, f"one of {list(CALCIUM_MODES)}", "choose a listed option"))
    ca = calcium_mmol_per_min(kb, mode, q_in, q_col)
    s = ProcedureSettings(device=device_name, tbv_l=tbv_l, weight_kg=weight_kg, blood_volumes=blood_volumes,
                          volume_to_process_l=vol_l, inlet_flow_ml_per_min=q_in, inlet_to_ac_ratio=float(ratio),
                          acd_a_ml_per_min=q_ac, whole_blood_flow_ml_per_min=q_wb, duration_min=duration,
                          collect_ml_per_min=q_col, citrate_returned_mmol_per_min=cit_ret,
                          calcium_prophylaxis=mode, calcium_mmol_per_min=ca)
    w["citrate_dose"] = (f"CIR = Q_AC × {cit_mg_ml} mg/mL / W = {q_ac:.2f} × {cit_mg_ml} / {weight_kg:g} = "
                         f"{q_ac * cit_mg_ml / weight_kg:.2f} mg/kg/min")
    return s, w


def calcium_mmol_per_min(kb: KnowledgeBase, mode: str, q_in_ml_min: float, q_col_ml_min: float) -> float:
    """Calcium infused (mmol/min) for a prophylaxis mode."""
    if mode == "none":
        return 0.0
    if mode == "continuous":
        return _p(kb, "continuous_calcium_mmol_per_h") / 60.0
    # 10 mL of 10 % gluconate = 1 g per litre returned
    g_per_l = _p(kb, "gluconate_ml_10pct_per_litre_returned") * 0.1
    returned_l_min = (q_in_ml_min - q_col_ml_min) / 1000.0
    return g_per_l * returned_l_min * _p(kb, "calcium_mmol_per_g_gluconate")


def patient_state(case: Case, kb: KnowledgeBase, tbv_l: float, weight_kg: float,
                  wbc: float | None = None) -> tuple[PatientState, list[str], list[str]]:
    """Initial state from the case; returns (state, warnings, missing)."""
    warnings: list[str] = []
    missing: list[str] = []
    hct = case.value("hematocrit")
    if hct is None:
        missing.append("hematocrit")
    plt = case.value("platelets")
    if plt is None:
        missing.append("platelets")
    hb = case.value("hemoglobin")
    if hb is None:
        missing.append("hemoglobin")
    ica = case.value("ionized_calcium")
    if ica is None:
        ica = _p(kb, "ica_baseline_default_mmol_per_l")
        missing.append("ionized_calcium")
        warnings.append(f"No ionised calcium in the case: the iCa course starts from an assumed {ica} mmol/L "
                        "(unverified default) - measure it before the run.")
    w = case.value("wbc") if wbc is None else wbc
    return (PatientState(tbv_l=tbv_l, wbc_10e9_per_l=float(w) if w is not None else float("nan"),
                         platelets_10e9_per_l=plt, hemoglobin_g_per_dl=hb,
                         hematocrit_fraction=None if hct is None else hct / 100.0, ionized_calcium_mmol_per_l=ica,
                         citrate_basal_mmol_per_l=_p(kb, "citrate_basal_mmol_per_l"), weight_kg=weight_kg),
            warnings, missing)


def _assessment(case: Case, kb: KnowledgeBase, assessment: Assessment | None) -> Assessment:
    if assessment is not None:
        return assessment
    from leukos.rules import assess

    return assess(case, kb)


def _checklist(kb: KnowledgeBase, plan_bits: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    thr = _p(kb, "ica_symptom_threshold_mmol_per_l")
    plt_lo = kb.value("management.platelet_threshold_non_apl_low")
    plt_hi = kb.value("management.platelet_threshold_non_apl_high")
    plt_bleed = kb.value("management.platelet_threshold_bleeding")
    return (
        {"risk": "Citrate reaction / hypocalcaemia",
         "watch": "perioral or digital paraesthesia, metallic taste, nausea, chills, chest tightness → tetany, "
                  "arrhythmia; worse on day 2 of consecutive procedures",
         "threshold": f"ionised calcium < {thr} mmol/L (hypocalcaemia and hypotension; QT prolongation first)",
         "action": "check iCa before and during the run; slow the inlet/AC rate and give calcium; prophylaxis "
                   f"options in the plan (predicted nadir {plan_bits.get('nadir', 'n/a')})",
         "citations": ["tas2017_citrate", "lee_arepally2012", "weinstein1996", "buchta2003"]},
        {"risk": "Hypotension from the extracorporeal volume",
         "watch": "blood pressure and heart rate, especially at the start of the run",
         "threshold": f"ECV {plan_bits['ecv_pct']:.1f} % of TBV (trigger {plan_bits['ecv_thr']:g} %, arbitrary)",
         "action": "RBC prime if ECV exceeds the trigger or the patient weighs ≤ "
                   f"{_p(kb, 'rbc_prime_weight_kg'):g} kg; avoid raising viscosity before cytoreduction",
         "citations": ["karger2003", "cecyn_rbc_prime", "blood_rev_transfusion"]},
        {"risk": "Bleeding or infection at the access",
         "watch": "femoral apheresis/dialysis catheter site; bleeding with low platelets or coagulopathy",
         "threshold": "any bleeding, fever, site erythema",
         "action": "emergent femoral catheter acceptable; correct coagulopathy per the assessment",
         "citations": ["pathologyoutlines_leukapheresis"]},
        {"risk": "Reaction to the anticoagulant",
         "watch": "ACD-A citrate effects (above); heparin if the device profile adds it",
         "threshold": f"citrate {plan_bits['cir']:.2f} mg/kg/min vs symptom-free < {plan_bits['cir_lim']:.2f}",
         "action": "lower AC rate or raise the inlet:AC ratio within device limits; calcium",
         "citations": ["scilit_acd_infusion", "bolan2001", "korean2004_lvl"]},
        {"risk": "Platelet (and red-cell) loss to the product",
         "watch": "platelets before and after (" + (f"predicted after: {plan_bits['plt_post']}" if plan_bits.get("plt_post")
                                            else "no prediction: platelets before not recorded") + "); Hb",
         "threshold": f"platelets ≥ {plt_lo:g}-{plt_hi:g} ×10⁹/L commonly kept in non-APL hyperleukocytosis "
                      f"(≥ {plt_bleed:g} with bleeding/DIC) [unverified]",
         "action": "transfuse platelets as needed (platelets do not raise viscosity meaningfully)",
         "citations": ["rollig2015", "jca1994_flow", "lee2014"]},
        {"risk": "Follow-up counts",
         "watch": "CBC (WBC, platelets, Hb), iCa, electrolytes/TLS labs before and after each session",
         "threshold": "post count depends on sampling time (rebound from the marrow/extravascular pool)",
         "action": "daily counts until cytoreduction works; repeat daily procedures until symptoms resolve "
                   "and the count falls; start cytoreduction now",
         "citations": ["pathologyoutlines_leukapheresis", "clinicalpub_leukapheresis"]},
    )


def plan_leukapheresis(case: Case, options: PlanOptions | None, kb: KnowledgeBase,
                       assessment: Assessment | None = None) -> ProcedurePlan:
    """Plan one procedure for ``case`` (goal depletion, stem-cells or car-t).

    Parameters
    ----------
    case : Case
    options : PlanOptions, optional
        Requests; ``None`` fields take the knowledge-base defaults (shown in ``working``).
    kb : KnowledgeBase
    assessment : Assessment, optional
        The case's assessment; computed with :func:`leukos.rules.assess` when not given. Its
        leukapheresis contraindications (APL known or suspected) make ``recommended`` false.

    Returns
    -------
    ProcedurePlan

    Raises
    ------
    LeukosUserError
        Missing weight (or height/sex when the TBV method needs them), missing WBC for a
        depletion, missing precounts for a collection, impossible flows/volumes.
    """
    options = options or PlanOptions()
    if options.goal not in GOALS:
        raise LeukosUserError(ErrorDetail("goal", options.goal, f"one of {list(GOALS)}", "choose a listed goal"))
    a = _assessment(case, kb, assessment)
    lk = a.leukapheresis
    pt = case.patient
    sex = pt.sex.value if pt.sex is not None else None
    age = case.age_years
    bv = estimate_tbv(weight_kg=pt.weight_kg, height_cm=pt.height_cm, sex=sex, age_years=age, kb=kb,
                      method=options.tbv_method)
    tbv, weight = bv.tbv_l, float(pt.weight_kg)
    warnings: list[str] = list(bv.warnings)
    unverified: list[str] = []
    contraindications: list[str] = []
    citations: list[str] = list(bv.citations)
    working: dict[str, Any] = {"tbv": bv.to_dict(),
                               "assessment": {"indicated": lk.indicated, "asfa_category": lk.asfa_category,
                                              "urgency": lk.urgency, "apl_suspected": lk.apl_suspected,
                                              "notes": list(lk.notes)}}

    collection = options.goal != "depletion"
    dev_name = options.device or (_p(kb, "collection_device_default") if collection else _p(kb, "device_default"))
    dev = _device(kb, dev_name)
    bv_max = _p(kb, "collection_blood_volumes_max") if collection else _p(kb, "depletion_blood_volumes_max")

    # volume requested
    if options.blood_volumes is not None and options.volume_l is not None:
        raise LeukosUserError(ErrorDetail("blood_volumes / volume_l", (options.blood_volumes, options.volume_l),
                                          "one of them", "give either --blood-volumes or --volume-l"))
    if options.volume_l is not None:
        if not options.volume_l > 0:
            raise LeukosUserError(ErrorDetail("volume_l", options.volume_l, "a positive volume in litres", "give e.g. --volume-l 9"))
        blood_volumes = options.volume_l / tbv
        working["blood_volumes"] = f"{options.volume_l:g} L / {tbv:.2f} L = {blood_volumes:.2f} TBV"
    elif options.blood_volumes is not None:
        blood_volumes = float(options.blood_volumes)
    else:
        blood_volumes = _p(kb, "blood_volumes_default")
    coll: dict[str, Any] | None = None
    if collection:
        # one session is limited by the device's run target (TBV) and its maximum run time
        q_wb_ml_min = _q_wb_ml_per_min(dev, options, tbv)
        bv_time = dev["run_time_range_min"][1] * q_wb_ml_min / 1000.0 / tbv
        bv_max = min(bv_max, bv_time)
        coll, blood_volumes = _collection(options, kb, dev, tbv, weight, blood_volumes, bv_max,
                                          explicit=options.blood_volumes is not None or options.volume_l is not None)
        coll["multi_day_plan"] = _multi_day(kb, coll, bv_max, tbv, q_wb_ml_min, seed=int(_p(kb, "random_seed")))
        citations += coll["citations"]

    settings, fw = procedure_settings(tbv_l=tbv, weight_kg=weight, options=options, kb=kb, device_name=dev_name,
                                      blood_volumes=blood_volumes, bv_max=bv_max)
    working["flows"] = fw
    citations += list(dev["citations"]) + ["apheresis_md_derived", "acd_a_composition"]
    for key in ("ecv", "collect", "ac"):
        if dev.get(f"{key}_status") == "U":
            unverified.append(f"device {dev_name}: {dev[f'{key}_note']}")

    # citrate dose against its limit
    cir = settings.acd_a_ml_per_min * _p(kb, "acd_a_citrate_mg_per_ml") / weight
    lim = _p(kb, "citrate_symptom_free_mg_per_kg_per_min")
    if options.liver_dysfunction:
        lim *= _p(kb, "liver_dysfunction_citrate_factor")
        working["citrate_limit"] = f"{_p(kb, 'citrate_symptom_free_mg_per_kg_per_min')} × {_p(kb, 'liver_dysfunction_citrate_factor')} (liver dysfunction) = {lim:.2f} mg/kg/min"
    if cir > lim:
        warnings.append(f"Citrate {cir:.2f} mg/kg/min is above the symptom-free rate {lim:.2f} mg/kg/min: expect "
                        "citrate reactions - use calcium prophylaxis and monitor iCa.")
    if cir > _p(kb, "citrate_studied_max_mg_per_kg_per_min"):
        warnings.append(f"Citrate {cir:.2f} mg/kg/min exceeds the highest rate studied for iCa kinetics "
                        f"({_p(kb, 'citrate_studied_max_mg_per_kg_per_min')} mg/kg/min): the iCa prediction extrapolates.")
    citations += ["scilit_acd_infusion", "bolan2001"]

    # ECV and prime
    ecv = float(dev["ecv_ml"])
    ecv_pct = 100.0 * ecv / (tbv * 1000.0)
    ecv_thr = _p(kb, "ecv_pct_tbv_threshold")
    prime_w = _p(kb, "rbc_prime_weight_kg")
    prime = ecv_pct > ecv_thr or weight <= prime_w
    working["ecv"] = f"ECV {ecv:g} mL / TBV {tbv * 1000:.0f} mL = {ecv_pct:.1f} % (trigger {ecv_thr:g} %; RBC prime at ≤ {prime_w:g} kg)"
    if prime:
        warnings.append(f"RBC prime advised: ECV {ecv_pct:.1f} % of TBV (trigger {ecv_thr:g} %) or weight "
                        f"{weight:g} kg ≤ {prime_w:g} kg.")
    citations += ["karger2003", "cecyn_rbc_prime"]
    if age is not None and age < _p(kb, "min_age_years"):
        contraindications.append(f"Age {age:.2f} y < {_p(kb, 'min_age_years')} y: whole-blood exchange is advised "
                                 "rather than leukocytapheresis (CHOP).")
        citations.append("chop_leukapheresis")

    # contraindications from the assessment (the APL gate lives in the rules)
    if lk.apl_suspected or lk.contraindications:
        contraindications.extend(lk.contraindications or ("APL known or suspected: leukapheresis is contraindicated.",))
        citations += list(lk.citations)
    warnings += [f"Caution before leukapheresis: {c}" for c in lk.cautions]
    if options.vascular_access is False:
        contraindications.append("No vascular access suitable for apheresis: place a femoral apheresis/dialysis catheter first.")
    elif options.vascular_access is None:
        warnings.append("Vascular access not recorded: confirm an apheresis-capable line (femoral catheter acceptable in emergencies).")
    if not collection and lk.indicated is not True and not lk.apl_suspected:
        warnings.append("The assessment does not find leukapheresis indicated "
                        f"({'not decided' if lk.indicated is None else 'not indicated'}): this plan is for reference only.")

    # the patient state; lab-based checks
    wbc = case.value("wbc")
    pat, pw, missing = patient_state(case, kb, tbv, weight)
    warnings += pw
    if "ionized_calcium" in missing:
        unverified.append("apheresis.ica_baseline_default_mmol_per_l")
    hct = case.value("hematocrit")
    if hct is not None and hct > _p(kb, "hct_formula_upper_pct"):
        warnings.append(f"Hct {hct:g} % > {_p(kb, 'hct_formula_upper_pct'):g} %: Hct-based volume estimates underestimate.")
    if wbc is not None and wbc > _p(kb, "leukocrit_wbc_threshold"):
        warnings.append(f"WBC {wbc:g} ×10⁹/L > {_p(kb, 'leukocrit_wbc_threshold'):g}: the leukocrit matters - subtract it "
                        "from Hct-based plasma volume; height/weight formulas may underestimate the blood volume "
                        "(Chekol 2012). A lower removal efficiency at extreme counts was not confirmed on published sessions.")
        citations.append("chekol2012")
    plt = case.value("platelets")
    plt_lo = kb.value("management.platelet_threshold_non_apl_low")
    if plt is not None and plt < plt_lo:
        warnings.append(f"Platelets {plt:g} ×10⁹/L < {plt_lo:g}: the run removes platelets - transfuse as needed "
                        "[threshold unverified].")
    if not collection and wbc is None:
        raise LeukosUserError(ErrorDetail("labs.wbc", None, "the white cell count (10^9/L)",
                                          "add labs.wbc to the case: the depletion cannot be planned without it"),
                              title="The leukapheresis cannot be planned")
    if collection and wbc is None:
        pat = replace(pat, wbc_10e9_per_l=1.0)  # leukocyte course not reported for collections
    # Monte Carlo prediction
    diagnosis = case.diagnosis.value if case.diagnosis is not None else None
    group = kinetics_group(kb, diagnosis)
    n = options.draws or _p(kb, "plan_draws")
    params = sample_params(kb, diagnosis=diagnosis, weight_kg=weight, n=n, seed=options.seed,
                           liver_dysfunction=options.liver_dysfunction, procedure=(settings, pat))
    predicted = summarise(settings, pat, params,
                          next_morning_h=None if collection else kb.value("apheresis_outcomes.next_morning_hours_after_end"))
    cal_opts = []
    for mode in CALCIUM_MODES:
        s_mode = replace(settings, calcium_prophylaxis=mode,
                         calcium_mmol_per_min=calcium_mmol_per_min(kb, mode, settings.inlet_flow_ml_per_min,
                                                                   settings.collect_ml_per_min))
        tr = simulate((s_mode, pat), params, np.linspace(0, settings.duration_min, 31))
        nad = np.percentile(tr.ionized_calcium_mmol_per_l.min(axis=1), [5, 50])
        cal_opts.append(MappingProxyType({
            "mode": mode, "calcium_mmol_per_h": round(s_mode.calcium_mmol_per_min * 60, 2),
            "description": {"none": "no prophylaxis",
                            "gluconate_per_litre": f"{_p(kb, 'gluconate_ml_10pct_per_litre_returned'):g} mL 10 % calcium gluconate per litre returned",
                            "continuous": f"continuous calcium {_p(kb, 'continuous_calcium_mmol_per_h'):g} mmol/h"}[mode],
            "nadir_ionized_calcium_mmol_per_l": {"p05": round(float(nad[0]), 2), "median": round(float(nad[1]), 2)},
            "citations": {"none": [], "gluconate_per_litre": ["weinstein1996"], "continuous": ["buchta2003"]}[mode]}))
    unverified += ["apheresis_calibration.ica_citrate_slope (fitted to one study)", "apheresis.citrate_vd_l_per_kg", "apheresis.fluid_retained_fraction",
                   "the outcome model's removal efficiency (fitted by leukos to published sessions)",
                   f"refill and regrowth after the run in {kb.table('apheresis')['disease_kinetics'][group].get('label', group)} (unverified priors)"]
    nadir_med = predicted["nadir_ionized_calcium_mmol_per_l"]["median"]
    warnings += _calcium_warnings(kb, settings.calcium_prophylaxis, nadir_med, cal_opts)
    stt = None
    if collection:
        for k in ("post_wbc_10e9_per_l", "pct_reduction", "ce1_pct", "ce2_pct", "product_cells_10e9",
                  "next_morning_wbc_10e9_per_l", "next_morning_hours_after_end"):
            predicted.pop(k, None)
    else:
        outcome = predict_next_session(patient_prior(kb, diagnosis=diagnosis), pre_wbc_10e9_per_l=float(wbc),
                                       blood_volumes=settings.blood_volumes, seed=int(_p(kb, "random_seed")))
        predicted["wbc_outcome_model"] = outcome.to_dict() | {"validated": _validation_text(kb)}
        citations.append("leukos_outcome_model")
        grp = kb.table("apheresis_outcomes")["groups"][disease_group(kb, diagnosis)]
        if grp.get("caution"):
            warnings.append(grp["caution"])
            citations += list(grp["caution_citations"])
        target = options.target_wbc_10e9_per_l or _p(kb, "target_wbc_10e9_per_l")
        if not target > 0:
            raise LeukosUserError(ErrorDetail("target", target, "a positive count in 10^9/L", "give e.g. --target 100"))
        stt = sessions_to_target(settings, pat, params, target_10e9_per_l=target, max_sessions=int(_p(kb, "sessions_max")),
                                 interval_h=_p(kb, "session_interval_h"))
        if options.target_wbc_10e9_per_l is None:
            unverified.append("apheresis.target_wbc_10e9_per_l (default target 100, ASFA stop target unverified)")
    citations += ["leukos_calibration", "lopert2023", "lee2014", "jca1994_flow",
                  "chekol2012", "tas2017_citrate", "bauer2005", "kramer2003"]
    update = _update(options, kb, settings, pat, diagnosis, weight, collection)
    if update is not None:
        warnings += list(update["warnings"])
        citations.append("leukos_calibration")
    plt_post = predicted.get("platelets_post_10e9_per_l")
    if plt_post is not None and plt_post["median"] < plt_lo:
        warnings.append(f"Caution before leukapheresis: predicted platelets after the run {plt_post['median']} ×10⁹/L "
                        f"< {plt_lo:g}: plan a platelet transfusion.")
    bits = {"ecv_pct": ecv_pct, "ecv_thr": ecv_thr, "cir": cir, "cir_lim": lim, "nadir": f"{nadir_med} mmol/L",
            "plt_post": None if plt_post is None else f"{plt_post['median']} ×10⁹/L"}
    checklist = _checklist(kb, bits)
    for c in checklist:
        citations += c["citations"]
    recommended = not contraindications and (collection or lk.indicated is True)
    if collection and coll is not None and coll.get("error"):
        recommended = False
    return ProcedurePlan(
        goal=options.goal, case_id=case.id, recommended=recommended, settings=settings, patient=pat,
        tbv_method=bv.method, diagnosis_group=group, ecv_ml=ecv, ecv_pct_tbv=ecv_pct, prime_with_rbc=prime,
        citrate_mg_per_kg_per_min=cir, citrate_limit_mg_per_kg_per_min=lim,
        calcium_options=tuple(cal_opts), predicted=MappingProxyType(predicted),
        sessions_to_target=None if stt is None else MappingProxyType(stt),
        collection=None if coll is None else MappingProxyType(coll),
        patient_update=None if update is None else MappingProxyType(update),
        checklist=tuple(MappingProxyType(c) for c in checklist),
        contraindications=tuple(contraindications), warnings=tuple(dict.fromkeys(warnings)),
        unverified=tuple(dict.fromkeys(unverified)), working=MappingProxyType(working | {"missing_data": missing}),
        citations=tuple(dict.fromkeys(citations)), leukos_version=__version__, ruleset_version=kb.ruleset_version)


def _validation_text(kb: KnowledgeBase) -> str:
    """How the end-of-run prediction did on published sessions it was not fitted to (the stored
    leave-one-source-out summary), against ASFA's midpoint, in words."""
    v = kb.table("apheresis_outcome_fit").get("validation", {}).get("wbc", {})
    chosen = str(v.get("chosen", {}).get("structure", "")).replace("+", "_")
    res = v.get(chosen, {})
    model, asfa = res.get("model"), res.get("asfa_45")
    if not model or not asfa:
        return ("end of run: not validated in this knowledge base; next morning: not validated "
                "(no published next-morning counts without cytoreduction)")
    n = int(model["n"])
    verdict = ("better than" if model["mae_pct_points"] < asfa["mae_pct_points"]
               else "no better than")
    return (f"end of run, on {n} published sessions it was not fitted to: the median missed the observed fall by "
            f"{model['mae_pct_points']:g} percentage points on average ({verdict} ASFA's 45 % midpoint, "
            f"{asfa['mae_pct_points']:g}) and the 90 % band held {str(model['coverage_90']).replace('/', ' of ')}; rely on the band, not the "
            "median; next morning: not validated (no published next-morning counts without cytoreduction)")


def _calcium_warnings(kb: KnowledgeBase, selected: str, nadir_median: float,
                      options: list[Mapping[str, Any]]) -> list[str]:
    """Warn when the planned calcium prophylaxis leaves the median, or the 5th percentile, of the predicted
    lowest ionised calcium below the symptom threshold, and name the options that keep it above."""
    thr = _p(kb, "ica_symptom_threshold_mmol_per_l")
    sel = next((o for o in options if o["mode"] == selected), None)
    p05 = sel["nadir_ionized_calcium_mmol_per_l"]["p05"] if sel else nadir_median
    if nadir_median >= thr and p05 >= thr:
        return []
    safer = [f"{o['description']} (5th percentile {o['nadir_ionized_calcium_mmol_per_l']['p05']:g} mmol/L)"
             for o in options if o["mode"] != selected and o["nadir_ionized_calcium_mmol_per_l"]["p05"] >= thr]
    label = sel["description"] if sel else selected
    if nadir_median < thr:
        head = f"Predicted lowest ionised calcium {nadir_median:g} mmol/L is below {thr:g} mmol/L with {label}"
    else:
        head = (f"With {label}, more than 1 in 20 patients like this one are predicted to fall below {thr:g} mmol/L ionised calcium "
                f"(5th percentile {p05:g} mmol/L)")
    tail = (f": consider {' or '.join(safer)}" if safer
            else ": no listed option keeps the 5th percentile above it; slow the inlet/AC rate and monitor iCa closely")
    return [head + tail + "."]


def _update(options: PlanOptions, kb: KnowledgeBase, settings: ProcedureSettings, pat: PatientState,
            diagnosis: str | None, weight: float, collection: bool) -> dict[str, Any] | None:
    """Per-patient updating from an observed completed session (both counts needed)."""
    pre, post = options.observed_pre_wbc_10e9_per_l, options.observed_post_wbc_10e9_per_l
    if pre is None and post is None and options.observed_volume_l is None:
        return None
    if collection:
        raise LeukosUserError(ErrorDetail("observed counts", (pre, post), "only for a depletion",
                                          "drop the observed-session options for a collection"))
    if pre is None or post is None:
        missing = "observed_pre_wbc_10e9_per_l" if pre is None else "observed_post_wbc_10e9_per_l"
        raise LeukosUserError(ErrorDetail(missing, None, "both the pre and the post count of the completed session",
                                          "give --observed-pre and --observed-post"),
                              title="The completed session cannot be used")
    if not (isinstance(pre, (int, float)) and pre > 0 and isinstance(post, (int, float)) and post > 0):
        raise LeukosUserError([ErrorDetail(f, v, "a positive count in 10^9/L", "give the measured count")
                               for f, v in (("observed_pre_wbc_10e9_per_l", pre), ("observed_post_wbc_10e9_per_l", post))
                               if not (isinstance(v, (int, float)) and v > 0)], title="The completed session cannot be used")
    if post > 10 * pre:
        raise LeukosUserError(ErrorDetail("observed_post_wbc_10e9_per_l", post, f"at most 10 × the pre count ({pre:g})",
                                          "check the counts and their units"), title="The completed session cannot be used")
    vol = options.observed_volume_l
    if vol is not None and not (0 < vol <= settings.tbv_l * 5):
        raise LeukosUserError(ErrorDetail("volume_processed_l", vol, f"0-{settings.tbv_l * 5:.1f} L (≤ 5 TBV)",
                                          "give the whole-blood volume processed in litres"),
                              title="The completed session cannot be used")
    done_bv = vol / settings.tbv_l if vol else settings.blood_volumes
    prior = patient_prior(kb, diagnosis=diagnosis)
    posterior = update_patient_params(prior, [ObservedSession(pre, post, done_bv)])
    next_pre = pat.wbc_10e9_per_l if isinstance(pat.wbc_10e9_per_l, (int, float)) else post
    seed = int(_p(kb, "random_seed"))
    pop = predict_next_session(prior, pre_wbc_10e9_per_l=float(next_pre), blood_volumes=settings.blood_volumes, seed=seed)
    own = predict_next_session(posterior, pre_wbc_10e9_per_l=float(next_pre), blood_volumes=settings.blood_volumes, seed=seed)
    done_pop = predict_next_session(prior, pre_wbc_10e9_per_l=pre, blood_volumes=done_bv, seed=seed)
    warnings = []
    if not (done_pop.end_of_run["p05"] <= post <= done_pop.end_of_run["p95"]):
        warnings.append(f"The observed post count {post:g} ×10⁹/L lies outside the population's 90 % band "
                        f"({done_pop.end_of_run['p05']:g}-{done_pop.end_of_run['p95']:g}): check the counts, their timing "
                        "and the volume; the patient's own prediction follows the observation.")
    if post >= pre:
        warnings.append("The count did not fall during the completed session (sampling time, mobilisation, "
                        "proliferation or dilution): the next session is predicted to lower it little.")
    return {"observed": {"pre_wbc_10e9_per_l": pre, "post_wbc_10e9_per_l": post, "blood_volumes": round(done_bv, 2)},
            "completed_session_population_band": dict(done_pop.end_of_run),
            "log_k_prior": {"mean": round(prior.mean_log_k, 3), "sd": round(prior.sd_persistent, 3)},
            "log_k_posterior": {"mean": round(posterior.mean_log_k, 3), "sd": round(posterior.sd_log_k, 3)},
            "next_session_population": pop.to_dict(), "next_session_this_patient": own.to_dict(),
            "warnings": warnings, "working": list(own.working),
            "method": "grid posterior of the patient's per-blood-volume log-fall (leukos.apheresis.patient)"}


def _multi_day(kb: KnowledgeBase, coll: dict[str, Any], bv_per_day: float, tbv: float, q_wb_ml_min: float, *,
               seed: int) -> dict[str, Any]:
    """Daily collections at the most one session allows: days needed and P(target reached by day N).

    CE varies between patients as logit-normal around the device CE2 with the between-source SD
    of the validated CE model (leave-one-source-out: the device profile's CE2 was the better centre).
    The precount is assumed unchanged from day to day (no data on day-to-day mobilisation).
    """
    days = int(kb.value("apheresis_outcomes.collection_days_max"))
    sd = math.sqrt(kb.value("apheresis_outcome_fit.ce_tau") ** 2 + kb.value("apheresis_outcome_fit.ce_mu_var"))
    ce0 = coll["ce2"]
    rng = np.random.default_rng(seed)
    ce = 1.0 / (1.0 + np.exp(-(math.log(ce0 / (1 - ce0)) + sd * rng.standard_normal(4000))))
    per_day = ce * coll["precount_per_ul"] * 1e6 * bv_per_day * tbv
    need_days = np.ceil(coll["target_cells"] / per_day)
    prob = [round(100.0 * float(np.mean(need_days <= d)), 1) for d in range(1, days + 1)]
    med = float(np.median(need_days))
    central = coll["target_cells"] / (ce0 * coll["precount_per_ul"] * 1e6 * bv_per_day * tbv)
    return {
        "blood_volumes_per_day": round(bv_per_day, 2), "volume_per_day_l": round(bv_per_day * tbv, 2),
        "duration_per_day_min": round(bv_per_day * tbv * 1000.0 / q_wb_ml_min),
        "days_needed_at_central_ce": max(1, math.ceil(central - 1e-9)),
        "days_needed_median": int(med) if med <= days else f"> {days}",
        "probability_by_day_pct": prob,
        "working": [f"Per day: {bv_per_day:.2f} TBV = {bv_per_day * tbv:.2f} L (the most one session allows: device run "
                    f"target and maximum run time) at {q_wb_ml_min:.0f} mL/min.",
                    f"CE2 {ce0:g} (device profile) with between-source logit SD {sd:.2f} (validated CE model); "
                    "precount assumed the same every day."],
        "citations": ["leukos_outcome_model", "transfusion2018_cart_children"],
    }


def _q_wb_ml_per_min(dev: dict[str, Any], options: PlanOptions, tbv: float) -> float:
    ratio = options.inlet_to_ac_ratio or dev["inlet_ac_ratio"]
    if "inlet_flow_ml_per_min" in dev:
        return dev["inlet_flow_ml_per_min"] * (ratio - 1) / ratio
    ac = options.ac_rate_ml_per_min_per_l_tbv or dev["ac_rate_ml_per_min_per_l_tbv"]
    return ac * tbv * (ratio - 1)


def _collection(options: PlanOptions, kb: KnowledgeBase, dev: dict[str, Any], tbv: float, weight: float,
                blood_volumes: float, bv_max: float, *, explicit: bool) -> tuple[dict[str, Any], float]:
    """Volume for a target yield: V = target / (CE2 × precount) (Terumo)."""
    if options.goal == "stem-cells":
        marker, pre, ce_key = "CD34+", options.cd34_per_ul, "ce2_cd34"
        if pre is None or options.target_cd34_10e6_per_kg is None:
            raise LeukosUserError(
                [ErrorDetail(f, v, e, fx) for f, v, e, fx in (
                    ("cd34_per_ul", pre, "the pre-collection peripheral-blood CD34+ count (cells/µL)", "give --cd34-per-ul"),
                    ("target_cd34_10e6_per_kg", options.target_cd34_10e6_per_kg,
                     "the CD34+ target (×10⁶/kg of the recipient)", "give --target, e.g. --target 5"))
                 if v is None], title="The stem-cell collection cannot be planned")
        rw = options.recipient_weight_kg or weight
        target_cells = options.target_cd34_10e6_per_kg * 1e6 * rw
        target_txt = f"{options.target_cd34_10e6_per_kg:g} ×10⁶/kg × {rw:g} kg = {target_cells / 1e6:.0f} ×10⁶ CD34+"
        cites = list(dev.get("ce2_cd34_citations", [])) + ["terumo_ce", "rowley2001"]
    else:
        marker, pre, ce_key = "CD3+", options.cd3_per_ul, "ce2_cd3"
        if pre is None:
            raise LeukosUserError(ErrorDetail("cd3_per_ul", None, "the pre-collection peripheral-blood CD3+ count (cells/µL)",
                                              "give --cd3-per-ul"), title="The CAR-T collection cannot be planned")
        t = options.target_cd3_10e9 or kb.value("apheresis.car_t_cd3_target_10e9")
        target_cells = t * 1e9
        rw = None
        target_txt = f"{t:g} ×10⁹ CD3+ (minimum {kb.value('apheresis.car_t_cd3_minimum_10e9'):g} ×10⁹)"
        cites = list(dev.get("ce2_cd3_citations", [])) + ["terumo_ce", "allen2017"]
    if not pre > 0:
        raise LeukosUserError(ErrorDetail(f"{ce_key.split('_')[1]}_per_ul", pre, "a positive count in cells/µL", "check the precount"))
    if ce_key not in dev:
        raise LeukosUserError(ErrorDetail("device", dev["label"], f"a collection profile with {ce_key}",
                                          "use --device spectra_optia_cmnc"))
    ce = float(dev[ce_key])
    lo, hi = dev[f"{ce_key}_range"]
    per_l = pre * 1e6
    v_need = target_cells / (ce * per_l)
    v_range = (target_cells / (hi * per_l), target_cells / (lo * per_l))
    bv_need = v_need / tbv
    one = bv_need <= bv_max
    sessions = max(1, math.ceil(bv_need / bv_max))
    if explicit:
        use_bv = blood_volumes
    else:
        use_bv = min(max(bv_need, kb.value("apheresis.blood_volumes_min")), bv_max)
    yield_cells = ce * per_l * use_bv * tbv
    out = {
        "marker": marker, "precount_per_ul": pre, "target": target_txt, "target_cells": target_cells,
        "recipient_weight_kg": rw, "ce2": ce, "ce2_range": [lo, hi], "ce2_note": dev.get(f"{ce_key}_note"),
        "volume_needed_l": round(v_need, 2), "volume_needed_range_l": [round(v_range[0], 2), round(v_range[1], 2)],
        "blood_volumes_needed": round(bv_need, 2), "one_session_reaches_target": one, "sessions_needed": sessions,
        "planned_blood_volumes": round(use_bv, 2),
        "expected_yield_cells": yield_cells,
        "expected_yield": (f"{yield_cells / 1e6 / rw:.2f} ×10⁶/kg" if rw else f"{yield_cells / 1e9:.2f} ×10⁹"),
        "formula": f"V = target / (CE2 × precount) = {target_cells / 1e6:.4g} ×10⁶ cells / ({ce:g} × {pre:g}/µL × 10⁶ µL/L) = {v_need:.2f} L",
        "notes": ["Yield = CE2 × precount × whole-blood volume processed (Terumo); mobilisation during large-volume "
                  "runs can raise the yield above this (Rowley 2001: collected CD34+ ≈ 3× the starting pool)."
                  if marker == "CD34+" else
                  "Yield = CE2 × precount × volume (Terumo); NIH met the 2 ×10⁹ CD3+ target in 77 %, failures had "
                  "fewer lymphocytes and more blasts (Allen 2017)."],
        "citations": cites,
    }
    if not one:
        out["notes"].append(f"{bv_need:.1f} TBV needed > {bv_max:.2f} TBV per session (device run target and "
                            f"maximum run time): plan {sessions} sessions or "
                            "expect mobilisation to help.")
    return out, use_bv
