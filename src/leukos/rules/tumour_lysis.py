"""Tumour lysis syndrome: Cairo-Bishop 2004 (or Howard 2011) laboratory and clinical TLS, and the
Cairo 2010 risk tier. Thresholds in knowledge/data/rules/tumour_lysis.toml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leukos.domain.assessment import TlsResult
from leukos.domain.case import Case, Diagnosis
from leukos.knowledge import KnowledgeBase
from leukos.rules._common import Gaps, above, any3, below, fmt, lab_working, param_working
from leukos.rules.definitions import (
    AboveReference,
    ByAge,
    CaseInputs,
    Change,
    CountRule,
    Criterion,
    Evaluator,
    compile_predicate,
    count_met,
    describe,
    params_of,
    tls_laboratory,
    walk,
)

__all__ = ["assess_tls"]

LAB_CRITERIA = ("uric_acid", "potassium", "phosphate", "calcium")


@dataclass(frozen=True)
class _Planned:
    """One criterion with what its working shows that depends on the knowledge alone."""

    crit: Criterion
    run: Evaluator  # the predicate compiled (:func:`compile_predicate`)
    rule_text: str  # the predicate in words (``describe``)
    limits: tuple[str, ...]  # its limit parameters (the change fraction aside)
    limit_names: tuple[str, ...]  # the same without their area ("tumour_lysis."), as the working names them
    by_age: ByAge | None
    change: Change | None
    above_reference: bool


def _plan(kb: KnowledgeBase) -> tuple[CountRule, tuple[_Planned, ...]]:
    """The configured laboratory TLS rule and its criteria planned (once per knowledge base)."""
    def build(kb: KnowledgeBase) -> tuple[CountRule, tuple[_Planned, ...]]:
        rule = tls_laboratory(kb)
        planned = []
        for c in rule.criteria:
            limits = tuple(k for k in params_of(c.predicate) if k != "tumour_lysis.change_fraction")
            planned.append(_Planned(c, compile_predicate(c.predicate, kb), describe(c.predicate, kb), limits,
                                    tuple(k.split(".", 1)[1] for k in limits), _first(c.predicate, ByAge),
                                    _first(c.predicate, Change), _uses(c.predicate, AboveReference)))
        return rule, tuple(planned)
    return kb.derived("tumour_lysis.plan", build)


def _criterion(case: Case, planned: _Planned, inputs: CaseInputs, gaps: Gaps) -> tuple[bool | None, dict[str, Any]]:
    """One laboratory criterion of the shared definition (:mod:`leukos.rules.definitions`): (met, working)."""
    crit = planned.crit
    analyte = inputs.resolve(crit.input)
    lv = case.lab(analyte)
    w: dict[str, Any] = {"value": lab_working(lv, case), "rule": planned.rule_text}
    if analyte == "potassium_plasma":
        w["note"] = "plasma/whole-blood potassium used (serum potassium is prone to pseudohyperkalaemia)"
    limits = planned.limits
    if limits:
        w["threshold"] = param_working(gaps.p(limits[0]))
        if len(limits) > 1:
            w["thresholds"] = {name: param_working(gaps.p(k)) for k, name in zip(limits, planned.limit_names, strict=True)}
    if crit.name == "calcium" and case.lab("ionized_calcium") is not None:
        w["ionized_calcium"] = lab_working(case.lab("ionized_calcium"), case)
    met = planned.run(inputs)
    by_age = planned.by_age
    if by_age is not None and by_age.when_unknown == "agree" and inputs.child() is None:
        w["age"] = "age unknown: decided only where the adult and child limits agree"
        gaps.need("patient.age_years")
    if crit.name == "uric_acid" and inputs.child() and planned.above_reference \
            and lv is not None and lv.reference_high is None:
        gaps.need("labs.uric_acid.reference_high")
    change = planned.change
    if change is not None and lv is not None:
        frac = gaps.p(change.param)
        base = case.baseline(analyte)
        if base is None or base.value == 0:
            w["change_rule"] = "not assessed: no baseline (give a series)"
        else:
            delta = (lv.value - base.value) / base.value
            hit = delta <= -float(frac.value) if change.falling else delta >= float(frac.value)
            w["baseline"] = base.to_working(case.time_text)
            w["measured_change"] = {"value": round(100 * delta, 1), "unit": "%"}
            w["change_rule"] = (f"{'fall' if change.falling else 'rise'} of {frac.value:.0%} from baseline: "
                                f"{'met' if hit else 'not met'}")
    return met, w


def _uses(p: Any, kind: type) -> bool:
    return any(isinstance(x, kind) for x in walk(p))


def _first(p: Any, kind: type):
    return next((x for x in walk(p) if isinstance(x, kind)), None)


def _risk(case: Case, gaps: Gaps, renal: bool | None, chem_above_uln: bool | None) -> tuple[str | None, dict[str, Any]]:
    """Cairo 2010 risk tier for the known diagnosis (None when it cannot be placed)."""
    dx = case.diagnosis
    wbc = case.lab("wbc")
    ldh = case.lab("ldh")
    w: dict[str, Any] = {"diagnosis": dx.value if dx else None, "wbc": lab_working(wbc, case), "ldh": lab_working(ldh, case)}
    hi = float(gaps.v("tumour_lysis.risk_high_wbc"))
    ldh_mult = float(gaps.v("tumour_lysis.risk_ldh_uln_multiple"))
    ldh_high: bool | None = None
    if ldh is not None and ldh.reference_high:
        ldh_high = ldh.value >= ldh_mult * ldh.reference_high
        w["ldh_rule"] = f"LDH >= {ldh_mult:g} x ULN ({fmt(ldh.reference_high)} U/L)"
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
        w["note"] = "CML blast phase placed as acute leukaemia for the risk tier (unverified, status U)"
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
    rule, planned = _plan(gaps.kb)
    inputs = CaseInputs(case, gaps.kb)
    citations = ["cairo_bishop2004"] if definition == "cairo_bishop" else ["howard2011"]
    notes: list[str] = []
    crit: dict[str, bool | None] = {}
    working: dict[str, Any] = {"definition": param_working(gaps.p("tumour_lysis.definition")), "criteria": {}}
    for pc in planned:
        c = pc.crit
        met, w = _criterion(case, pc, inputs, gaps)
        crit[c.name] = met
        working["criteria"][c.name] = w
        if case.lab(c.name) is None:
            gaps.need(c.name)
    met = [n for n, v in crit.items() if v is True]
    unknown = [n for n, v in crit.items() if v is None]
    gaps.p(rule.min_met_param)
    laboratory = count_met(crit, rule, gaps.kb)
    if laboratory is None:
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
    cw: dict[str, Any] = {"creatinine": lab_working(creat, case)}
    if creat is None:
        gaps.need("creatinine")
        renal_crit.append(None)
    elif creat.reference_high:
        renal_crit.append(creat.value >= float(mult.value) * creat.reference_high)
        cw["uln_rule"] = f">= {mult.value} x ULN ({fmt(creat.reference_high)} umol/L)"
    else:
        renal_crit.append(None)
        gaps.need("labs.creatinine.reference_high")
    if definition == "howard" and creat is not None:
        base = case.lab("creatinine_baseline") or case.baseline("creatinine")
        rise = gaps.p("tumour_lysis.howard_creatinine_rise")
        if base is not None:
            renal_crit.append(creat.value - base.value >= gaps.threshold(rise.key, "creatinine"))
            cw["rise_rule"] = f"rise >= {rise.value} {rise.unit} from {fmt(base.value)} umol/L"
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
