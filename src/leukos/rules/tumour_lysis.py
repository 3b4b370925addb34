"""Tumour lysis syndrome: Cairo-Bishop 2004 (or Howard 2011) laboratory and clinical TLS, and the
Cairo 2010 risk tier. Thresholds in knowledge/data/rules/tumour_lysis.toml."""

from __future__ import annotations

from typing import Any

from leukos.domain.assessment import TlsResult
from leukos.domain.case import Case, Diagnosis
from leukos.rules._common import Gaps, above, any3, below, lab_working, param_working

__all__ = ["assess_tls"]

LAB_CRITERIA = ("uric_acid", "potassium", "phosphate", "calcium")


def _is_child(case: Case, gaps: Gaps) -> bool | None:
    age = case.age_years
    if age is None:
        return None
    return age < float(gaps.v("tumour_lysis.child_below_age"))


def _criterion(case: Case, name: str, gaps: Gaps, definition: str, child: bool | None) -> tuple[bool | None, dict[str, Any]]:
    """One laboratory criterion: (met, working)."""
    lv = case.lab(name)
    w: dict[str, Any] = {"value": lab_working(lv)}
    if name == "potassium" and case.lab("potassium_plasma") is not None:
        # A same-draw plasma/whole-blood potassium is free of in-vitro lysis: it is the true value.
        lv = case.lab("potassium_plasma")
        w["value"] = lab_working(lv)
        w["note"] = "plasma/whole-blood potassium used (serum potassium is prone to pseudohyperkalaemia)"
    if lv is None:
        return None, w
    howard = definition == "howard"
    if name == "calcium":
        if howard:
            p = gaps.p("tumour_lysis.calcium_max")
            total = below(lv, gaps.threshold(p.key, "calcium", met_when="below"), inclusive=False)
            ica_p = gaps.p("tumour_lysis.howard_ionized_calcium_max")
            ica = below(case.lab("ionized_calcium"), float(ica_p.value), inclusive=False)
            w["rule"] = f"total Ca < {p.value} {p.unit} (not corrected for albumin) or ionised Ca < {ica_p.value} mmol/L"
            w["ionized_calcium"] = lab_working(case.lab("ionized_calcium"))
            w["threshold"] = param_working(p)
            return any3([total, ica]), w
        p = gaps.p("tumour_lysis.calcium_max")
        met = below(lv, gaps.threshold(p.key, "calcium", met_when="below"), inclusive=True)
        w["rule"] = f"<= {p.value} {p.unit}"
        w["threshold"] = param_working(p)
        return _with_change(case, name, met, w, gaps, falling=True), w
    if name == "phosphate":
        if child is None:
            adult = gaps.p("tumour_lysis.phosphate_min_adult" if not howard else "tumour_lysis.howard_phosphate_min_adult")
            kid = gaps.p("tumour_lysis.phosphate_min_child")
            # Age unknown: decide only where adult and child thresholds agree.
            a = above(lv, gaps.threshold(adult.key, "phosphate"), inclusive=not howard)
            c = above(lv, gaps.threshold(kid.key, "phosphate"), inclusive=not howard)
            met = a if a == c else None
            w["rule"] = f"adult {adult.value} / child {kid.value} {kid.unit}; age unknown"
            gaps.need("patient.age_years")
            return (met if howard else _with_change(case, name, met, w, gaps)), w
        key = "tumour_lysis.phosphate_min_child" if child else (
            "tumour_lysis.howard_phosphate_min_adult" if howard else "tumour_lysis.phosphate_min_adult")
        p = gaps.p(key)
    elif name == "uric_acid":
        p = gaps.p("tumour_lysis.howard_uric_acid_min" if howard else "tumour_lysis.uric_acid_min")
        if howard and child:
            if lv.reference_high is None:
                w["rule"] = "> upper limit of normal for age (child): no reference range given"
                gaps.need("labs.uric_acid.reference_high")
                return None, w
            met = lv.value > lv.reference_high
            w["rule"] = f"> ULN for age ({lv.reference_high:g} umol/L)"
            return met, w
    else:
        p = gaps.p("tumour_lysis.potassium_min")
    met = above(lv, gaps.threshold(p.key, name), inclusive=not howard)
    w["rule"] = f"{'>' if howard else '>='} {p.value} {p.unit}"
    w["threshold"] = param_working(p)
    return (met if howard else _with_change(case, name, met, w, gaps)), w


def _with_change(case: Case, name: str, met: bool | None, w: dict[str, Any], gaps: Gaps, *, falling: bool = False) -> bool | None:
    """Cairo-Bishop also counts a 25 % change from baseline (the earliest value of a series)."""
    if met is True:
        return True
    base = case.baseline(name)
    if base is None or base.value == 0:
        w["change_rule"] = "not assessed: no baseline (give a series)"
        return met
    frac = gaps.p("tumour_lysis.change_fraction")
    cur = case.lab(name).value
    change = (cur - base.value) / base.value
    w["baseline"] = base.to_working()
    w["change_fraction"] = round(change, 4)
    hit = change <= -float(frac.value) if falling else change >= float(frac.value)
    w["change_rule"] = f"{'fall' if falling else 'rise'} of {frac.value:.0%} from baseline: {'met' if hit else 'not met'}"
    return True if hit else met


def _risk(case: Case, gaps: Gaps, renal: bool | None, chem_above_uln: bool | None) -> tuple[str | None, dict[str, Any]]:
    """Cairo 2010 risk tier for the known diagnosis (None when it cannot be placed)."""
    dx = case.diagnosis
    wbc = case.lab("wbc")
    ldh = case.lab("ldh")
    w: dict[str, Any] = {"diagnosis": dx.value if dx else None, "wbc": lab_working(wbc), "ldh": lab_working(ldh)}
    hi = float(gaps.v("tumour_lysis.risk_high_wbc"))
    ldh_mult = float(gaps.v("tumour_lysis.risk_ldh_uln_multiple"))
    ldh_high: bool | None = None
    if ldh is not None and ldh.reference_high:
        ldh_high = ldh.value >= ldh_mult * ldh.reference_high
        w["ldh_rule"] = f"LDH >= {ldh_mult:g} x ULN ({ldh.reference_high:g} U/L)"
    elif ldh is not None:
        gaps.need("labs.ldh.reference_high")
    else:
        gaps.need("ldh")
    tier: str | None = None
    if dx is None:
        if above(wbc, float(gaps.v("hyperleukocytosis.leukocytosis_threshold")), inclusive=False) is not False:
            gaps.need("findings.known_diagnosis")
        w["rule"] = "the risk tier needs the diagnosis"
        return None, w
    acute_myeloid = dx in (Diagnosis.AML, Diagnosis.APL, Diagnosis.CML_BP)
    if dx is Diagnosis.CML_BP:
        w["note"] = "CML blast phase placed as acute leukaemia (unverified, clinical.md §5c)"
    if acute_myeloid:
        low = float(gaps.v("tumour_lysis.risk_aml_low_wbc"))
        w["rule"] = f"AML: low WBC < {low:g} and LDH < 2xULN; intermediate WBC {low:g}-<{hi:g} or LDH >= 2xULN; high WBC >= {hi:g}"
        if above(wbc, hi, inclusive=True):
            tier = "high"
        elif above(wbc, low, inclusive=True):
            tier = "intermediate"
        elif below(wbc, low, inclusive=False):
            tier = None if ldh_high is None else ("intermediate" if ldh_high else "low")
    elif dx is Diagnosis.ALL:
        w["rule"] = f"ALL: high WBC >= {hi:g} and/or LDH >= 2xULN; otherwise intermediate"
        if above(wbc, hi, inclusive=True) or ldh_high:
            tier = "high"
        elif below(wbc, hi, inclusive=False) and ldh_high is False:
            tier = "intermediate"
    elif dx is Diagnosis.CLL:
        cll = float(gaps.v("tumour_lysis.risk_cll_intermediate_wbc"))
        w["rule"] = f"CLL: intermediate WBC >= {cll:g} (or fludarabine/targeted therapy); low with alkylator-only therapy"
        if above(wbc, cll, inclusive=True):
            tier = "intermediate"
        else:
            w["note"] = "CLL below the WBC cut-off: the tier depends on the planned therapy, which the case does not give"
    elif dx is Diagnosis.CML_CP:
        tier = "low"
        w["rule"] = "CML chronic phase: low"
    else:
        w["rule"] = f"{dx.value}: not covered by Cairo 2010 tiers"
    if tier is None:
        return None, w
    # Modifiers: low + renal dysfunction -> intermediate; intermediate + renal dysfunction and/or
    # uric acid/K/phosphate above ULN -> high.
    w["renal_dysfunction"] = renal
    w["uric_k_phosphate_above_uln"] = chem_above_uln
    if tier == "low" and renal:
        tier = "intermediate"
        w["modifier"] = "low + renal dysfunction -> intermediate"
    elif tier == "intermediate" and (renal or chem_above_uln):
        tier = "high"
        w["modifier"] = "intermediate + renal dysfunction and/or uric acid/K/phosphate > ULN -> high"
    elif tier in ("low", "intermediate") and (renal is None or chem_above_uln is None):
        w["modifier"] = "not fully assessed (needs creatinine/uric acid/K/phosphate with reference ranges)"
    return tier, w


def assess_tls(case: Case, gaps: Gaps) -> TlsResult:
    definition = str(gaps.v("tumour_lysis.definition"))
    child = _is_child(case, gaps)
    citations = ["cairo_bishop2004"] if definition == "cairo_bishop" else ["howard2011"]
    notes: list[str] = []
    crit: dict[str, bool | None] = {}
    working: dict[str, Any] = {"definition": param_working(gaps.p("tumour_lysis.definition")), "criteria": {}}
    for name in LAB_CRITERIA:
        met, w = _criterion(case, name, gaps, definition, child)
        crit[name] = met
        working["criteria"][name] = w
        if case.lab(name) is None:
            gaps.need(name)
    met = [n for n, v in crit.items() if v is True]
    unknown = [n for n, v in crit.items() if v is None]
    laboratory: bool | None
    if len(met) >= 2:
        laboratory = True
    elif len(met) + len(unknown) < 2:
        laboratory = False
    else:
        laboratory = None
        gaps.cannot("Laboratory TLS: " + ", ".join(unknown) + " not available")
    if definition == "cairo_bishop" and not any(case.baseline(n) for n in LAB_CRITERIA):
        notes.append("No baseline values: the 25 % change criteria were not assessed (give labs as time series).")
    notes.append("Criteria apply from 3 days before to 7 days after the start of therapy: values are taken as current.")
    if "potassium" in met:
        notes.append("The potassium criterion may be spurious in hyperleukocytosis: see the artefacts.")

    # Clinical TLS: laboratory TLS plus creatinine >= 1.5 x ULN, arrhythmia or seizure
    # (Howard also: creatinine rise >= 26.5 umol/L).
    creat = case.lab("creatinine")
    mult = gaps.p("tumour_lysis.creatinine_uln_multiple")
    renal_crit: list[bool | None] = []
    cw: dict[str, Any] = {"creatinine": lab_working(creat)}
    if creat is None:
        gaps.need("creatinine")
        renal_crit.append(None)
    elif creat.reference_high:
        renal_crit.append(creat.value >= float(mult.value) * creat.reference_high)
        cw["uln_rule"] = f">= {mult.value} x ULN ({creat.reference_high:g} umol/L)"
    else:
        renal_crit.append(None)
        gaps.need("labs.creatinine.reference_high")
    if definition == "howard" and creat is not None:
        base = case.lab("creatinine_baseline") or case.baseline("creatinine")
        rise = gaps.p("tumour_lysis.howard_creatinine_rise")
        if base is not None:
            renal_crit.append(creat.value - base.value >= gaps.threshold(rise.key, "creatinine"))
            cw["rise_rule"] = f"rise >= {rise.value} {rise.unit} from {base.value:g} umol/L"
    symptoms = case.symptoms
    events = None if symptoms is None else any(s in symptoms for s in ("arrhythmia", "seizure"))
    cw["arrhythmia_or_seizure"] = events
    clinical_parts = renal_crit + [events]
    renal_or_event = any3(clinical_parts)
    if laboratory is False:
        clinical: bool | None = False
    elif laboratory is True:
        clinical = renal_or_event
        if clinical is None:
            gaps.cannot("Clinical TLS: creatinine upper limit of normal (reference_high) or symptoms not given")
    else:
        clinical = None  # clinical TLS needs laboratory TLS, which is undecided
    working["clinical"] = cw

    renal = any3([renal_crit[0] if creat is not None and creat.reference_high else None,
                  None if symptoms is None else ("acute_kidney_injury" in symptoms)])
    chem = [case.lab(n) for n in ("uric_acid", "potassium", "phosphate")]
    chem_above = any3([None if (lv is None or lv.reference_high is None) else lv.value > lv.reference_high for lv in chem])
    risk, rw = _risk(case, gaps, renal, chem_above)
    working["risk"] = rw
    citations += ["cairo2010", "bmj_bp_tls"]
    return TlsResult(
        laboratory=laboratory,
        clinical=clinical,
        criteria_met=tuple(met),
        criteria_not_assessed=tuple(unknown),
        risk=risk,
        definition=definition,
        notes=tuple(notes),
        working=working,
        citations=tuple(citations),
    )
