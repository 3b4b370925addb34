"""Differential diagnosis of extreme leukocytosis and of tissue findings (EMH vs infiltration).

The criteria are data (``knowledge/data/rules/differential.toml``, clinical.md §1, §3c, §7, §8);
this module only evaluates them.

How the ranking is computed
---------------------------
1. **Features.** Each feature of the case is yes / no / unknown. A *measure* feature compares a
   quantity (WBC, blast %, absolute basophils, immature granulocytes…) with a threshold
   parameter; quantities are intervals, so a partly known differential still decides what it can
   (myelocytes 25 % alone already means immature granulocytes > 20 %). A *fact* feature reads the
   findings (genetics, immunophenotype, smear, causes, tumour, tissue cytology). Unknown is never
   read as no.
2. **Points.** Each criterion row gives a diagnosis points for a feature that holds: positive
   supports, negative opposes, zero lists the diagnosis as a consideration without points. The
   score is the sum. Weights are a software choice (``leukos_operational``, U).
3. **Likelihood.** ``high`` if score >= ``likelihood_high_min_points`` *and* the diagnosis's
   defining test is in the case (``high_requires``: e.g. CML needs BCR::ABL1 positive, PLR a
   known tumour with a raised cytokine and other causes excluded, APL PML::RARA or a
   promyelocytic phenotype); ``moderate`` if score >= ``likelihood_moderate_min_points``; else
   ``low``. A cap feature (e.g. BCR::ABL1 negative for CML) limits it to ``low``.
4. **Order.** By likelihood, then score, then a fixed tie-break order (data). A diagnosis is
   listed when at least one of its supporting or context features holds; blood diagnoses are not
   listed when the WBC is known to be normal, tissue diagnoses only when tissue cytology is given.
5. **What would change it.** For every unknown feature of a listed diagnosis the ranking is
   recomputed with that feature present; those that would change its likelihood or rank are
   reported in ``would_change``.

Monotonicity (tested): a gate term is always a supporting feature and a cap always an opposing
one, and adding information never turns a feature that holds into one that does not. Hence adding
a finding that supports diagnosis D never lowers D's score or likelihood, and never lets a
diagnosis that the finding does not also support overtake D.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from leukos.domain.assessment import DifferentialEntry
from leukos.domain.case import Case, Diagnosis, GeneticResult, Immunophenotype
from leukos.knowledge import KnowledgeBase, Parameter
from leukos.rules._common import all3, any3

__all__ = ["differential", "case_features", "cml_phase", "IMPLEMENTED", "BANDS"]

IMPLEMENTED = True
AREA = "differential"
BANDS = ("low", "moderate", "high")
_CML_FAMILY = frozenset({Diagnosis.CML, Diagnosis.CML_CP, Diagnosis.CML_AP, Diagnosis.CML_BP})
_MPN = _CML_FAMILY | {Diagnosis.CNL, Diagnosis.OTHER_MPN}
_BLAST_PHENOTYPES = frozenset({Immunophenotype.MYELOID, Immunophenotype.MONOCYTIC, Immunophenotype.PROMYELOCYTIC,
                               Immunophenotype.B_LYMPHOBLASTIC, Immunophenotype.T_LYMPHOBLASTIC})


# --------------------------------------------------------------------------------------------------
# Quantities as intervals: a partly known differential still bounds a sum.

@dataclass(frozen=True)
class _Interval:
    low: float
    high: float

    def describe(self, unit: str) -> str:
        if self.low == self.high:
            return f"{self.low:.3g} {unit}"
        if math.isinf(self.high) or self.high >= 100 and unit == "%":
            return f">= {self.low:.3g} {unit}"
        return f"{self.low:.3g}-{self.high:.3g} {unit}"


def _compare(iv: _Interval | None, op: str, t: float) -> bool | None:
    if iv is None:
        return None
    if op == ">":
        return True if iv.low > t else False if iv.high <= t else None
    if op == ">=":
        return True if iv.low >= t else False if iv.high < t else None
    if op == "<":
        return True if iv.high < t else False if iv.low >= t else None
    if op == "<=":
        return True if iv.high <= t else False if iv.low > t else None
    raise ValueError(f"unknown comparison {op!r}")


def _lab(case: Case, name: str) -> _Interval | None:
    lv = case.lab(name)
    if lv is None:
        return None
    if lv.comparator in (">", ">="):
        return _Interval(lv.value, math.inf)
    if lv.comparator in ("<", "<="):
        return _Interval(0.0, lv.value)
    return _Interval(lv.value, lv.value)


def _number(v: Any) -> _Interval | None:
    if v is None or isinstance(v, bool):
        return None
    return _Interval(float(v), float(v))


def _pct_sum(parts: list[_Interval | None]) -> _Interval | None:
    known = [p for p in parts if p is not None]
    if not known:
        return None
    low = sum(p.low for p in known)
    if len(known) < len(parts):
        return _Interval(low, max(low, 100.0))
    return _Interval(low, sum(p.high for p in known))


def _absolute(case: Case, pct_name: str) -> _Interval | None:
    wbc, pct = _lab(case, "wbc"), _lab(case, pct_name)
    if wbc is None or pct is None:
        return None
    return _Interval(wbc.low * pct.low / 100.0, wbc.high * pct.high / 100.0)


def _blasts_any(case: Case) -> _Interval | None:
    """Highest blast % of blood and marrow; bounded below by whichever is known."""
    pb, bm = _lab(case, "blasts_pct"), _number(case.findings.marrow.blasts_pct)
    if pb is None and bm is None:
        return None
    if pb is not None and bm is not None:
        return _Interval(max(pb.low, bm.low), max(pb.high, bm.high))
    one = pb or bm
    return _Interval(one.low, max(one.high, 100.0))


def _tissue_blasts(case: Case, *, exclude_sites: tuple[str, ...] = ()) -> _Interval | None:
    tc = case.findings.tissue_cytology
    if tc is None:
        return None
    if exclude_sites and tc.site and tc.site.lower() in exclude_sites:
        return _Interval(0.0, 0.0)  # not extramedullary in that classification's sense
    return _number(tc.blasts_pct)


# name -> (function, unit, case fields read)
_MEASURES: dict[str, tuple[Callable[[Case], _Interval | None], str, tuple[str, ...]]] = {
    "wbc": (lambda c: _lab(c, "wbc"), "x10^9/L", ("labs.wbc",)),
    "platelets": (lambda c: _lab(c, "platelets"), "x10^9/L", ("labs.platelets",)),
    "blasts_pb_pct": (lambda c: _lab(c, "blasts_pct"), "%", ("labs.blasts_pct",)),
    "blasts_any_pct": (_blasts_any, "%", ("labs.blasts_pct", "findings.marrow.blasts_pct")),
    "marrow_blasts_pct": (lambda c: _number(c.findings.marrow.blasts_pct), "%", ("findings.marrow.blasts_pct",)),
    "basophils_pct": (lambda c: _lab(c, "basophils_pct"), "%", ("labs.basophils_pct",)),
    "basophils_abs": (lambda c: _absolute(c, "basophils_pct"), "x10^9/L", ("labs.wbc", "labs.basophils_pct")),
    "eosinophils_abs": (lambda c: _absolute(c, "eosinophils_pct"), "x10^9/L", ("labs.wbc", "labs.eosinophils_pct")),
    "monocytes_abs": (lambda c: _absolute(c, "monocytes_pct"), "x10^9/L", ("labs.wbc", "labs.monocytes_pct")),
    "monocytes_pct": (lambda c: _lab(c, "monocytes_pct"), "%", ("labs.monocytes_pct",)),
    "lymphocytes_pct": (lambda c: _lab(c, "lymphocytes_pct"), "%", ("labs.lymphocytes_pct",)),
    "ig_pct": (lambda c: _pct_sum([_lab(c, n) for n in ("promyelocytes_pct", "myelocytes_pct", "metamyelocytes_pct")]),
               "%", ("labs.promyelocytes_pct", "labs.myelocytes_pct", "labs.metamyelocytes_pct")),
    "neutrophils_bands_pct": (lambda c: _pct_sum([_lab(c, "neutrophils_pct"), _lab(c, "bands_pct")]), "%",
                              ("labs.neutrophils_pct", "labs.bands_pct")),
    "blasts_promyelocytes_pct": (lambda c: _pct_sum([_lab(c, "blasts_pct"), _lab(c, "promyelocytes_pct")]), "%",
                                 ("labs.blasts_pct", "labs.promyelocytes_pct")),
    "lap_score": (lambda c: _number(c.findings.lap_score), "", ("findings.lap_score",)),
    "tissue_blasts_pct": (lambda c: _tissue_blasts(c), "%", ("findings.tissue_cytology.blasts_pct",)),
    "extramedullary_blasts_pct": (lambda c: _tissue_blasts(c), "%", ("findings.tissue_cytology.blasts_pct",)),
    "extramedullary_blasts_not_spleen_liver_pct": (
        lambda c: _tissue_blasts(c, exclude_sites=("spleen", "liver")), "%",
        ("findings.tissue_cytology.blasts_pct", "findings.tissue_cytology.site")),
}


_DISPLAY = {
    "wbc": "WBC", "platelets": "platelets", "blasts_pb_pct": "blood blasts", "blasts_any_pct": "blasts",
    "marrow_blasts_pct": "marrow blasts", "basophils_pct": "basophils", "basophils_abs": "basophils",
    "eosinophils_abs": "eosinophils", "monocytes_abs": "monocytes", "monocytes_pct": "monocytes",
    "lymphocytes_pct": "lymphocytes", "ig_pct": "promyelocytes + myelocytes + metamyelocytes",
    "neutrophils_bands_pct": "segmented + bands", "blasts_promyelocytes_pct": "blasts + promyelocytes",
    "lap_score": "LAP score", "tissue_blasts_pct": "tissue blasts",
}


# --------------------------------------------------------------------------------------------------
# Facts read from the findings (three-valued; information only ever turns unknown into yes/no,
# and a fact that holds keeps holding when more is recorded).

def _not3(v: bool | None) -> bool | None:
    return None if v is None else not v


def _gene(case: Case, name: str, want: GeneticResult) -> bool | None:
    g = case.findings.gene(name)
    return None if g is GeneticResult.UNKNOWN else g is want


def _phenotype(case: Case, kinds: set[Immunophenotype]) -> bool | None:
    ip = case.findings.immunophenotype
    return None if ip is None else ip in kinds


def _drug(case: Case, name: str) -> bool | None:
    drugs = case.findings.drugs
    return None if drugs is None else name in drugs


def _c_difficile(case: Case) -> bool | None:
    inf = case.findings.infection
    if inf.organism:
        return "difficile" in inf.organism.lower()
    return False if inf.present is False else None


def _myelocyte_bulge(case: Case) -> bool | None:
    my, meta = case.value("myelocytes_pct"), case.value("metamyelocytes_pct")
    if my is None or meta is None:
        return None
    return my > meta


def _coagulopathy(case: Case, kb: KnowledgeBase) -> bool | None:
    fib = _compare(_lab(case, "fibrinogen"), "<=", float(kb.value("management.coagulopathy_fibrinogen_max")))
    inr = _compare(_lab(case, "inr"), ">", float(kb.value("management.coagulopathy_inr_min")))
    return any3([fib, inr])


def _cytokines(case: Case, kb: KnowledgeBase) -> list[bool | None]:
    out = []
    for name in ("g_csf", "gm_csf", "il6"):
        v = case.findings.cytokines.get(name)
        p = kb.param(f"{AREA}.{name}_uln")
        out.append(_compare(_number(v), ">", float(p.value)) if p.configured else None)
    return out


def _persistent(case: Case, kb: KnowledgeBase) -> bool | None:
    series = [lv for lv in case.series("wbc") if lv.time is not None]
    if len(series) < 2:
        return None
    span_days = (series[-1].time - series[0].time).total_seconds() / 86400.0
    if span_days < float(kb.value(f"{AREA}.cnl_persistence_days")):
        return None
    t = float(kb.value(f"{AREA}.cnl_wbc_min"))
    return all3(_compare(_Interval(lv.value, lv.value), ">=", t) for lv in series)


def _cnl_wbc(case: Case, kb: KnowledgeBase) -> bool | None:
    wbc = _lab(case, "wbc")
    full = _compare(wbc, ">=", float(kb.value(f"{AREA}.cnl_wbc_min")))
    if kb.value(f"{AREA}.cnl_criteria") != "ICC2022" or full is not False:
        return full
    low = _compare(wbc, ">=", float(kb.value(f"{AREA}.cnl_wbc_min_csf3r_icc")))
    return all3([low, _gene(case, "csf3r", GeneticResult.POSITIVE)])


def _tissue(case: Case, attr: str) -> bool | None:
    tc = case.findings.tissue_cytology
    return None if tc is None else getattr(tc, attr)


def _tissue_trilineage(case: Case) -> bool | None:
    tc = case.findings.tissue_cytology
    if tc is None:
        return None
    if tc.trilineage_precursors is True or (tc.megakaryocytes is True and tc.erythroid_precursors is True):
        return True
    if tc.trilineage_precursors is False or tc.megakaryocytes is False or tc.erythroid_precursors is False:
        return False
    return None


def _tissue_phenotype(case: Case) -> bool | None:
    tc = case.findings.tissue_cytology
    if tc is None or tc.immunophenotype is None:
        return None
    return tc.immunophenotype in _BLAST_PHENOTYPES


def _known_in(case: Case, codes: frozenset[Diagnosis]) -> bool | None:
    k = case.findings.known_diagnosis
    return None if k is None else k in codes


def _mpn_context(case: Case) -> bool | None:
    return any3([_known_in(case, _MPN), _gene(case, "bcr_abl1", GeneticResult.POSITIVE) or None])


def _lymphoblasts(case: Case) -> bool | None:
    blasts = _compare(_lab(case, "blasts_pct"), ">", 0.0)
    return all3([_phenotype(case, {Immunophenotype.B_LYMPHOBLASTIC, Immunophenotype.T_LYMPHOBLASTIC}), blasts])


_P = GeneticResult.POSITIVE
_N = GeneticResult.NEGATIVE
_FACTS: dict[str, Callable[[Case, KnowledgeBase], bool | None]] = {
    "bcr_abl1_positive": lambda c, kb: _gene(c, "bcr_abl1", _P),
    "bcr_abl1_negative": lambda c, kb: _gene(c, "bcr_abl1", _N),
    "pml_rara_positive": lambda c, kb: _gene(c, "pml_rara", _P),
    "pml_rara_negative": lambda c, kb: _gene(c, "pml_rara", _N),
    "csf3r_positive": lambda c, kb: _gene(c, "csf3r", _P),
    "csf3r_negative": lambda c, kb: _gene(c, "csf3r", _N),
    "flt3_itd_positive": lambda c, kb: _gene(c, "flt3_itd", _P),
    "kmt2a_positive": lambda c, kb: _gene(c, "kmt2a", _P),
    "phenotype_myeloid": lambda c, kb: _phenotype(c, {Immunophenotype.MYELOID, Immunophenotype.MONOCYTIC}),
    "phenotype_promyelocytic": lambda c, kb: _phenotype(c, {Immunophenotype.PROMYELOCYTIC}),
    "phenotype_lymphoblastic": lambda c, kb: _phenotype(c, {Immunophenotype.B_LYMPHOBLASTIC,
                                                            Immunophenotype.T_LYMPHOBLASTIC}),
    "phenotype_mature_b": lambda c, kb: _phenotype(c, {Immunophenotype.MATURE_B}),
    "phenotype_mature_t": lambda c, kb: _phenotype(c, {Immunophenotype.MATURE_T}),
    "auer_rods": lambda c, kb: c.findings.smear.auer_rods,
    "abnormal_promyelocytes": lambda c, kb: c.findings.smear.abnormal_promyelocytes,
    "toxic_changes": lambda c, kb: any3([c.findings.smear.toxic_granulation, c.findings.smear.dohle_bodies]),
    "toxic_changes_absent": lambda c, kb: _not3(any3([c.findings.smear.toxic_granulation,
                                                       c.findings.smear.dohle_bodies])),
    "myelocyte_bulge": lambda c, kb: _myelocyte_bulge(c),
    "coagulopathy": _coagulopathy,
    "splenomegaly": lambda c, kb: c.findings.splenomegaly,
    "infection_present": lambda c, kb: c.findings.infection.present,
    "c_difficile": lambda c, kb: _c_difficile(c),
    "g_csf_therapy": lambda c, kb: _drug(c, "g_csf"),
    "corticosteroids": lambda c, kb: _drug(c, "corticosteroids"),
    "lithium": lambda c, kb: _drug(c, "lithium"),
    "epinephrine": lambda c, kb: _drug(c, "epinephrine"),
    "reactive_cause_present": lambda c, kb: any3([c.findings.infection.present, _drug(c, "g_csf"),
                                                   _drug(c, "corticosteroids")]),
    "no_other_reactive_cause": lambda c, kb: _not3(any3([c.findings.infection.present, _drug(c, "g_csf"),
                                                          _drug(c, "corticosteroids")])),
    "no_reactive_cause": lambda c, kb: _not3(any3([c.findings.infection.present, _drug(c, "g_csf"),
                                                    _drug(c, "corticosteroids"), c.findings.solid_tumor.present])),
    "solid_tumor_present": lambda c, kb: c.findings.solid_tumor.present,
    "solid_tumor_absent": lambda c, kb: _not3(c.findings.solid_tumor.present),
    "tumour_in_marrow": lambda c, kb: any3([c.findings.solid_tumor.marrow_involvement,
                                             c.findings.marrow.tumour_cells]),
    "cytokine_raised": lambda c, kb: any3(_cytokines(c, kb)),
    "cytokines_normal": lambda c, kb: _not3(any3(_cytokines(c, kb))),
    "persistent_leukocytosis": _persistent,
    "cnl_wbc": _cnl_wbc,
    "tissue_given": lambda c, kb: True if c.findings.tissue_cytology is not None else None,
    "tissue_trilineage": lambda c, kb: _tissue_trilineage(c),
    "tissue_megakaryocytes": lambda c, kb: _tissue(c, "megakaryocytes"),
    "tissue_erythroid": lambda c, kb: _tissue(c, "erythroid_precursors"),
    "tissue_lacks_erythroid_megakaryocytic": lambda c, kb: all3([_not3(_tissue(c, "megakaryocytes")),
                                                                  _not3(_tissue(c, "erythroid_precursors"))])
    if c.findings.tissue_cytology is not None else None,
    "tissue_blast_phenotype": lambda c, kb: _tissue_phenotype(c),
    "mpn_context": lambda c, kb: _mpn_context(c),
    "aml_context": lambda c, kb: _known_in(c, frozenset({Diagnosis.AML, Diagnosis.APL})),
    "lymphoblasts_present": lambda c, kb: _lymphoblasts(c),
}


# --------------------------------------------------------------------------------------------------
# The rules, read from the knowledge base

@dataclass(frozen=True)
class _Row:
    code: str
    feature: str
    weight: float
    status: str
    citations: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class _Dx:
    code: str
    label: str
    scope: str
    order: int
    gate: tuple[tuple[Any, ...], ...]
    caps: tuple[str, ...]
    next_tests: tuple[str, ...]
    notes: tuple[str, ...]
    outside: tuple[str, ...]
    rows: tuple[_Row, ...]


@dataclass(frozen=True)
class _Rules:
    features: Mapping[str, Mapping[str, Any]]
    diagnoses: Mapping[str, _Dx]
    tests: Mapping[str, Mapping[str, Any]]
    phases: tuple[Mapping[str, Any], ...]
    mentions: Mapping[str, frozenset[str]]  # code -> features its rows, gate and caps read


def _param_key(name: str) -> str:
    return name if "." in name else f"{AREA}.{name}"


_RULES_CACHE: dict[int, tuple[KnowledgeBase, _Rules]] = {}
_RULES_CACHE_MAX = 8


def _rules(kb: KnowledgeBase) -> _Rules:
    """The parsed and checked rules of this knowledge base (cached per knowledge-base object)."""
    hit = _RULES_CACHE.get(id(kb))
    if hit is not None and hit[0] is kb:
        return hit[1]
    rules = _parse_rules(kb)
    if len(_RULES_CACHE) >= _RULES_CACHE_MAX:
        _RULES_CACHE.pop(next(iter(_RULES_CACHE)))
    _RULES_CACHE[id(kb)] = (kb, rules)
    return rules


def _parse_rules(kb: KnowledgeBase) -> _Rules:
    t = kb.table(AREA)
    settings = {k: kb.value(f"{AREA}.{k}") for k in ("cnl_criteria", "plr_high_criteria")}
    rows: dict[str, list[_Row]] = {}
    for r in t["criteria"]:
        if "setting" in r and settings.get(r["setting"], kb.value(_param_key(r["setting"]))) != r["when"]:
            continue
        rows.setdefault(r["code"], []).append(_Row(r["code"], r["feature"], float(r["weight"]), r["status"],
                                                   tuple(r["citations"]), r["text"]))
    dxs = {}
    for code, d in t["diagnoses"].items():
        gate = d.get("high_requires", [])
        if "gate_setting" in d:
            gate = gate[kb.value(_param_key(d["gate_setting"]))]
        dxs[code] = _Dx(code, d["label"], d["scope"], int(d["order"]),
                        tuple(tuple(alt) for alt in gate), tuple(d.get("cap_low_if", ())),
                        tuple(d.get("next_tests", ())), tuple(d.get("notes", ())),
                        tuple(d.get("outside_case_format", ())), tuple(rows.get(code, ())))
    mentions = {code: frozenset({r.feature for r in dx.rows} | _gate_terms(dx) | set(dx.caps))
                for code, dx in dxs.items()}
    rules = _Rules(t["features"], dxs, t["tests"], tuple(t["cml_phase"]), MappingProxyType(mentions))
    _check(rules, kb)
    return rules


def _gate_terms(dx: _Dx) -> set[str]:
    out: set[str] = set()
    for alt in dx.gate:
        for term in alt:
            out.update([term] if isinstance(term, str) else term)
    return out


def _check(rules: _Rules, kb: KnowledgeBase) -> None:
    """Developer errors in the rules file: fail loudly (the invariants the ranking relies on)."""
    known = set(rules.features)
    for dx in rules.diagnoses.values():
        if dx.code not in Diagnosis.__members__:
            raise ValueError(f"differential: unknown diagnosis code {dx.code!r}")
        weights: dict[str, set[int]] = {}
        for r in dx.rows:
            if r.feature not in known:
                raise ValueError(f"differential: {dx.code} uses unknown feature {r.feature!r}")
            if r.status not in ("V", "P", "U"):
                raise ValueError(f"differential: {dx.code}/{r.feature} status {r.status!r}")
            for c in r.citations:
                if c not in kb.citations:
                    raise ValueError(f"differential: {dx.code}/{r.feature} cites unknown key {c!r}")
            weights.setdefault(r.feature, set()).add((r.weight > 0) - (r.weight < 0))
        for f, signs in weights.items():
            if -1 in signs and signs - {-1}:  # weight >= 0 counts as supporting (context included)
                raise ValueError(f"differential: {f} both supports and opposes {dx.code}")
        supporting = {f for f, s in weights.items() if -1 not in s}
        opposing = {f for f, s in weights.items() if -1 in s}
        if not _gate_terms(dx) <= supporting:
            raise ValueError(f"differential: gate of {dx.code} uses non-supporting {_gate_terms(dx) - supporting}")
        if not set(dx.caps) <= opposing:
            raise ValueError(f"differential: caps of {dx.code} are not opposing: {set(dx.caps) - opposing}")
        for test in dx.next_tests:
            if test not in rules.tests:
                raise ValueError(f"differential: {dx.code} names unknown test {test!r}")
    for name, f in rules.features.items():
        if f["kind"] == "measure" and f["measure"] not in _MEASURES:
            raise ValueError(f"differential: feature {name} uses unknown measure {f['measure']!r}")
        if f["kind"] == "fact" and name not in _FACTS and name != "known_diagnosis":
            raise ValueError(f"differential: fact {name} has no implementation")
    for test in rules.tests.values():
        for c in test["citations"]:
            if c not in kb.citations:
                raise ValueError(f"differential: test cites unknown key {c!r}")
    for row in rules.phases:
        for c in row["citations"]:
            if c not in kb.citations:
                raise ValueError(f"differential: CML phase row cites unknown key {c!r}")


# --------------------------------------------------------------------------------------------------
# Features of the case

@dataclass(frozen=True)
class _Feature:
    name: str
    value: bool | None
    label: str
    sources: tuple[str, ...]
    detail: str = ""  # measured value, e.g. "basophils 3.6 x10^9/L"
    params: tuple[Parameter, ...] = ()


def _features(case: Case, kb: KnowledgeBase, rules: _Rules) -> dict[str, _Feature]:
    out: dict[str, _Feature] = {}
    for name, spec in rules.features.items():
        if name == "known_diagnosis":
            continue
        if spec["kind"] == "measure":
            fn, unit, sources = _MEASURES[spec["measure"]]
            iv = fn(case)
            params: tuple[Parameter, ...] = ()
            configured = True
            if "param" in spec:
                p = kb.param(_param_key(spec["param"]))
                threshold, params, configured = float(p.value), (p,), p.configured
            else:
                threshold = float(spec["value"])
            value = _compare(iv, spec["op"], threshold) if configured else None
            detail = "" if iv is None else f"{_DISPLAY.get(spec['measure'], spec['measure'])} {iv.describe(unit)}".strip()
            if not configured and iv is not None:
                detail += f" (not assessed: set {params[0].key} to your laboratory's limit)"
            out[name] = _Feature(name, value, spec["label"], sources, detail, params)
        else:
            detail, keys = _fact_detail(name, case, kb)
            out[name] = _Feature(name, _FACTS[name](case, kb), spec["label"], tuple(spec.get("sources", ())),
                                 detail, tuple(kb.param(k) for k in keys))
    return out


_CYTOKINE_NAMES = {"g_csf": "G-CSF", "gm_csf": "GM-CSF", "il6": "IL-6"}


def _fact_detail(name: str, case: Case, kb: KnowledgeBase) -> tuple[str, list[str]]:
    """What a fact read (for the output) and which parameters it compared against."""
    if name in ("cytokine_raised", "cytokines_normal"):
        parts, keys = [], []
        for c, label in _CYTOKINE_NAMES.items():
            v = case.findings.cytokines.get(c)
            if v is not None:
                key = f"{AREA}.{c}_uln"
                keys.append(key)
                p = kb.param(key)
                uln = f"ULN {p.value:g}" if p.configured else f"not assessed: set {key}"
                parts.append(f"{label} {v:g} pg/mL, {uln}")
        return "; ".join(parts), keys
    if name == "coagulopathy":
        return "", ["management.coagulopathy_fibrinogen_max", "management.coagulopathy_inr_min"]
    if name == "cnl_wbc":
        keys = [f"{AREA}.cnl_wbc_min"]
        if kb.value(f"{AREA}.cnl_criteria") == "ICC2022":
            keys.append(f"{AREA}.cnl_wbc_min_csf3r_icc")
        return "", keys
    if name == "persistent_leukocytosis":
        return "", [f"{AREA}.cnl_persistence_days", f"{AREA}.cnl_wbc_min"]
    return "", []


def case_features(case: Case, kb: KnowledgeBase) -> Mapping[str, bool | None]:
    """Every feature of the differential for this case: True, False or None (unknown).

    ``known_diagnosis`` is per diagnosis and appears as ``known_diagnosis:<CODE>``.
    """
    rules = _rules(kb)
    feats = {n: f.value for n, f in _features(case, kb, rules).items()}
    for code in rules.diagnoses:
        feats[f"known_diagnosis:{code}"] = _known_for(case, code)
    return MappingProxyType(feats)


def _known_for(case: Case, code: str) -> bool | None:
    k = case.findings.known_diagnosis
    if k is None:
        return None
    return ("CML" if k in _CML_FAMILY else k.value) == code


# --------------------------------------------------------------------------------------------------
# CML phase

@dataclass(frozen=True)
class PhaseResult:
    """The CML phase under one classification: ``phase`` CP | AP | BP | None (undetermined)."""

    system: str
    phase: str | None
    code: str
    met: tuple[str, ...] = ()
    high_risk: tuple[str, ...] = ()
    not_assessed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unverified: tuple[str, ...] = ()
    citations: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def cml_phase(case: Case, kb: KnowledgeBase) -> PhaseResult:
    """Phase of CML under ``differential.cml_phase_system`` (clinical.md §7c).

    A phase is only named if the case decides it: BP if any blast-phase criterion holds; AP if
    any accelerated-phase criterion holds; CP if every criterion the case can carry is decided
    and none holds. When only the marrow blast % is missing and the blood decides everything
    else, the phase is named from the blood and a note says that a marrow is needed to exclude
    a higher phase. Criteria outside the case format (additional chromosomal abnormalities,
    response to therapy) are never assessed and are listed in the CML entry.
    """
    system = kb.value(f"{AREA}.cml_phase_system")
    rows = [r for r in _rules(kb).phases if r["system"] == system]
    strict = _phase_eval(case, kb, rows, blood_only=False)
    if strict.phase is None and case.findings.marrow.blasts_pct is None:
        blood = _phase_eval(case, kb, rows, blood_only=True)
        if blood.phase is not None:
            return PhaseResult(**{**blood.__dict__, "notes": (
                "Marrow blast % not in the case: phase named from the blood only; a marrow is needed to "
                "exclude a higher phase.",)})
    return strict


def _phase_eval(case: Case, kb: KnowledgeBase, rows: list[Mapping[str, Any]], *, blood_only: bool) -> PhaseResult:
    system = kb.value(f"{AREA}.cml_phase_system")
    results: dict[str, list[tuple[Mapping[str, Any], bool | None]]] = {"BP": [], "AP": [], "HR": []}
    for r in rows:
        if "fact" in r:
            v = _FACTS[r["fact"]](case, kb)
        else:
            measure = "blasts_pb_pct" if blood_only and r["measure"] == "blasts_any_pct" else r["measure"]
            iv = _MEASURES[measure][0](case)
            v = _compare(iv, r["op"], float(r["value"]))
            if "below" in r:
                v = all3([v, _compare(iv, "<", float(r["below"]))])
        results[r["phase"]].append((r, v))
    met = [r["text"] for r, v in results["BP"] + results["AP"] if v is True]
    hr = tuple(r["text"] for r, v in results["HR"] if v is True)
    undecided = [(r, v) for r, v in results["BP"] + results["AP"] if v is None]
    blocking = [r for r, _ in undecided if r.get("required", True)]
    not_assessed = tuple(r["text"] for r, _ in undecided if not r.get("required", True))
    not_assessed += tuple(r["text"] for r, v in results["HR"] if v is None)
    missing = sorted({s for r in blocking if "measure" in r for s in _MEASURES[r["measure"]][2]
                      if _source_value(case, s) is None})
    used = [r for r, v in results["BP"] + results["AP"] + results["HR"] if v is True]
    if any(v is True for _, v in results["BP"]):
        phase = "BP"
    elif any(v is True for _, v in results["AP"]):
        phase = "AP"
    elif blocking:
        phase = None
    else:
        phase = "CP"
    code = {"BP": "CML_BP", "AP": "CML_AP", "CP": "CML_CP", None: "CML"}[phase]
    return PhaseResult(
        system=system, phase=phase, code=code, met=tuple(met), high_risk=hr, not_assessed=not_assessed,
        missing=tuple(missing),
        unverified=tuple(r["text"] for r in used if r["status"] == "U"),
        citations=tuple(dict.fromkeys(c for r in (used or rows) for c in r["citations"])),
    )


# --------------------------------------------------------------------------------------------------
# Scoring and ranking

@dataclass
class _Scored:
    dx: _Dx
    score: float
    band: str
    gate_met: bool
    capped_by: tuple[str, ...]
    fired: list[_Row] = field(default_factory=list)

    def key(self) -> tuple[int, float, int]:
        return (BANDS.index(self.band), self.score, -self.dx.order)


@dataclass
class _Ctx:
    """Everything one call of :func:`differential` computes once and reuses."""

    case: Case
    kb: KnowledgeBase
    rules: _Rules
    feats: Mapping[str, _Feature]
    vals: dict[str, bool | None]
    known: dict[str, bool | None]
    in_scope: tuple[_Dx, ...]
    high_min: float
    mod_min: float
    sources: dict[str, Any] = field(default_factory=dict)
    _by_code: dict[str, dict[str, bool | None]] = field(default_factory=dict)

    def vals_for(self, code: str) -> dict[str, bool | None]:
        """Feature values as this diagnosis sees them (``known_diagnosis`` is per diagnosis)."""
        v = self._by_code.get(code)
        if v is None:
            v = self._by_code[code] = {**self.vals, "known_diagnosis": self.known[code]}
        return v

    def source(self, path: str) -> Any:
        if path not in self.sources:
            self.sources[path] = _source_value(self.case, path)
        return self.sources[path]


def _context(case: Case, kb: KnowledgeBase) -> _Ctx:
    rules = _rules(kb)
    feats = _features(case, kb, rules)
    wbc_normal = _compare(_lab(case, "wbc"), "<=", float(kb.value("hyperleukocytosis.leukocytosis_threshold")))
    tissue = case.findings.tissue_cytology is not None
    in_scope = tuple(dx for dx in rules.diagnoses.values()
                     if not (dx.scope == "blood" and wbc_normal is True) and not (dx.scope == "tissue" and not tissue))
    return _Ctx(case, kb, rules, feats, {n: f.value for n, f in feats.items()},
                {code: _known_for(case, code) for code in rules.diagnoses}, in_scope,
                float(kb.value(f"{AREA}.likelihood_high_min_points")),
                float(kb.value(f"{AREA}.likelihood_moderate_min_points")))


def _gate_met(dx: _Dx, holds: Callable[[str], bool | None]) -> bool:
    for alt in dx.gate:
        if all(holds(t) is True if isinstance(t, str) else any(holds(x) is True for x in t) for t in alt):
            return True
    return False


def _score_one(ctx: _Ctx, dx: _Dx, forced: Mapping[str, bool]) -> _Scored | None:
    vals = ctx.vals_for(dx.code)
    if forced:
        vals = {**vals, **forced}
    fired = [r for r in dx.rows if vals[r.feature] is True]
    if not any(r.weight >= 0 for r in fired):
        return None
    score = sum(r.weight for r in fired)
    gate = _gate_met(dx, vals.__getitem__)
    caps = tuple(c for c in dx.caps if vals[c] is True)
    band = "high" if score >= ctx.high_min else "moderate" if score >= ctx.mod_min else "low"
    if band == "high" and not gate:
        band = "moderate"
    if caps:
        band = "low"
    return _Scored(dx, score, band, gate, caps, fired)


def _score_all(ctx: _Ctx, forced: Mapping[str, bool] = MappingProxyType({}),
               base: Mapping[str, _Scored | None] | None = None) -> list[_Scored]:
    """Score and rank every diagnosis in scope. With ``base`` (the unforced scores), only the
    diagnoses whose criteria mention a forced feature are scored again."""
    out = []
    for dx in ctx.in_scope:
        if base is not None and not (forced.keys() & ctx.rules.mentions[dx.code]):
            scored = base.get(dx.code)
        else:
            scored = _score_one(ctx, dx, forced)
        if scored is not None:
            out.append(scored)
    out.sort(key=_Scored.key, reverse=True)
    return out


# --------------------------------------------------------------------------------------------------
# Case values for features_used

def _source_value(case: Case, path: str) -> Any:
    head, _, rest = path.partition(".")
    if head == "labs":
        lv = case.lab(rest)
        return None if lv is None else lv.describe()
    obj: Any = case.findings
    parts = rest.split(".")
    for part in parts:
        if obj is None:
            return None
        obj = obj.get(part) if isinstance(obj, Mapping) else getattr(obj, part, None)
    if isinstance(obj, GeneticResult):
        return None if obj is GeneticResult.UNKNOWN else obj.value
    if hasattr(obj, "value") and not isinstance(obj, (int, float)):
        return obj.value
    if isinstance(obj, tuple):
        return list(obj)
    if path == "findings.tissue_cytology" and obj is not None:
        return "given"
    return obj


def _fmt_cites(cites) -> str:
    return "[" + ", ".join(cites) + "]"


def _row_text(row: _Row, feat: _Feature | None) -> str:
    label = feat.label if feat is not None else "diagnosis stated in the case"
    detail = f" ({feat.detail})" if feat is not None and feat.detail else ""
    flag = " (unverified)" if row.status == "U" else ""
    return f"{label}{detail}: {row.text}{flag} {_fmt_cites(row.citations)}"


def _would_change(ctx: _Ctx, ranked: list[_Scored], me: _Scored, what_if: dict[str, list[_Scored]]) -> list[str]:
    codes = [s.dx.code for s in ranked]
    my_rank = codes.index(me.dx.code) + 1
    out = []
    seen: set[str] = set()
    names = [r.feature for r in me.dx.rows] + sorted(_gate_terms(me.dx))
    for name in names:
        if name in seen or name == "known_diagnosis" or ctx.vals[name] is not None:
            continue
        seen.add(name)
        again = what_if.get(name)
        if again is None:
            again = what_if[name] = _score_all(ctx, {name: True}, {x.dx.code: x for x in ranked})
        new = next((s for s in again if s.dx.code == me.dx.code), None)
        if new is None:
            continue
        new_rank = [s.dx.code for s in again].index(me.dx.code) + 1
        if new.band == me.band and new_rank == my_rank:
            continue
        f = ctx.feats[name]
        where = ", ".join(f.sources) if f.sources else ", ".join(_feature_sources(ctx.rules, name))
        change = []
        if new.band != me.band:
            change.append(f"likelihood {me.band} -> {new.band}")
        if new_rank != my_rank:
            change.append(f"rank {my_rank} -> {new_rank}")
        out.append(f"{f.label} ({where}): {'; '.join(change)}")
    return out


def _feature_sources(rules: _Rules, name: str) -> tuple[str, ...]:
    spec = rules.features[name]
    if spec["kind"] == "measure":
        return _MEASURES[spec["measure"]][2]
    return tuple(spec.get("sources", ()))


def _next_tests(ctx: _Ctx, dx: _Dx) -> tuple[list[str], list[str], list[str]]:
    texts, shorts, cites = [], [], []
    for key in dx.next_tests:
        t = ctx.rules.tests[key]
        decides = t.get("decides", [])
        if decides and all(ctx.source(s) is not None for s in decides):
            continue
        texts.append(f"{t['text']} {_fmt_cites(t['citations'])}")
        shorts.append(t.get("short", key))
        cites.extend(t["citations"])
    return texts, shorts, cites


def _short_text(row: _Row, feat: _Feature | None) -> str:
    label = feat.label if feat is not None else "diagnosis stated in the case"
    detail = f" ({feat.detail})" if feat is not None and feat.detail else ""
    return f"{label}{detail}" + (" (U)" if row.status == "U" else "")


def _entry(ctx: _Ctx, ranked: list[_Scored], s: _Scored, rank: int,
           what_if: dict[str, list[_Scored]]) -> DifferentialEntry:
    case, kb, rules, feats = ctx.case, ctx.kb, ctx.rules, ctx.feats
    dx = s.dx
    supporting = [_row_text(r, feats.get(r.feature)) for r in s.fired if r.weight >= 0]
    against = [_row_text(r, feats.get(r.feature)) for r in s.fired if r.weight < 0]
    citations: list[str] = [c for r in s.fired for c in r.citations]
    unverified = [f"{feats[r.feature].label if r.feature in feats else r.feature}: {r.text}"
                  for r in s.fired if r.status == "U"]
    used_params: dict[str, Parameter] = {}
    for r in s.fired:
        f = feats.get(r.feature)
        for p in (f.params if f else ()):
            used_params[p.key] = p
    for p in used_params.values():
        citations.extend(p.citations)
        if p.unverified:
            unverified.append(f"threshold {p.key} = {p.value} {p.unit} (unverified)")
    unverified.append("points per criterion and likelihood bands are software choices (leukos_operational)")
    band_params = [kb.param(f"{AREA}.likelihood_high_min_points"), kb.param(f"{AREA}.likelihood_moderate_min_points")]
    citations.append("leukos_operational")

    # Which case fields were looked at (every decided feature this diagnosis reads)
    features_used: dict[str, Any] = {}
    for r in dx.rows:
        v = ctx.known[dx.code] if r.feature == "known_diagnosis" else ctx.vals[r.feature]
        if v is None:
            continue
        sources = ("findings.known_diagnosis",) if r.feature == "known_diagnosis" else \
            (feats[r.feature].sources or _feature_sources(rules, r.feature))
        for src in sources:
            val = ctx.source(src)
            if val is not None:
                features_used[src] = val

    notes = list(dx.notes)
    code = dx.code
    working: dict[str, Any] = {
        "score": s.score,
        "points": [{"feature": r.feature, "weight": r.weight, "status": r.status} for r in s.fired],
        "likelihood_thresholds": {p.key: p.value for p in band_params},
        "high_requires": [list(alt) for alt in dx.gate],
        "high_requires_met": s.gate_met,
        "capped_by": list(s.capped_by),
    }
    settings: dict[str, Any] = {}
    would = _would_change(ctx, ranked, s, what_if)
    if dx.code == "CML" and s.capped_by:
        working["phase"] = {"phase": None, "reason": "CML excluded by " + ", ".join(s.capped_by)}
    elif dx.code == "CML":
        ph = cml_phase(case, kb)
        code = ph.code
        notes.extend(ph.notes)
        settings["differential.cml_phase_system"] = ph.system
        working["phase"] = {"system": ph.system, "phase": ph.phase, "criteria_met": list(ph.met),
                            "high_risk_features": list(ph.high_risk), "not_assessed": list(ph.not_assessed)}
        citations.extend(ph.citations)
        unverified.extend(f"phase criterion: {t}" for t in ph.unverified)
        for t in ph.met:
            supporting.append(f"phase ({ph.system}): {t} {_fmt_cites(ph.citations)}")
        for t in ph.high_risk:
            supporting.append(f"WHO 2022 {t} {_fmt_cites(ph.citations)}")
        for row in rules.phases:
            if row["system"] == ph.system and "measure" in row:
                for src in _MEASURES[row["measure"]][2]:
                    if ctx.source(src) is not None:
                        features_used.setdefault(src, ctx.source(src))
        if ph.phase is None:
            would.append(f"CML phase ({ph.system}) undetermined: needs {', '.join(ph.missing) or 'more findings'}")
    if dx.code == "CNL":
        settings["differential.cnl_criteria"] = kb.value(f"{AREA}.cnl_criteria")
    if dx.code == "LEUKEMOID_PARANEOPLASTIC":
        settings["differential.plr_high_criteria"] = kb.value(f"{AREA}.plr_high_criteria")
        settings["differential.plr_leukocytosis_min"] = kb.value(f"{AREA}.plr_leukocytosis_min")
    if settings:
        working["settings"] = settings
    if dx.gate and not s.gate_met and s.band != "high":
        def lab(n: str) -> str:
            return feats[n].label if n in feats else n

        notes.append("Not 'high' without the defining finding(s): " + " OR ".join(
            " + ".join(lab(t) if isinstance(t, str) else "(" + " or ".join(map(lab, t)) + ")" for t in alt)
            for alt in dx.gate))
    elif not dx.gate:
        notes.append("No defining criteria are encoded for this code: it is never ranked 'high'.")
    if dx.outside:
        notes.append("Not in the case format (would also inform this): " + "; ".join(dx.outside))
    tests, short_tests, test_cites = _next_tests(ctx, dx)
    citations.extend(test_cites)
    working["summary"] = {
        "for": [_short_text(r, feats.get(r.feature)) for r in s.fired if r.weight > 0]
        + [t.split(" [", 1)[0] for t in supporting if t.startswith(("phase (", "WHO 2022"))],
        "context": [_short_text(r, feats.get(r.feature)) for r in s.fired if r.weight == 0],
        "against": [_short_text(r, feats.get(r.feature)) for r in s.fired if r.weight < 0],
        "tests": short_tests,
    }
    return DifferentialEntry(
        code=code,
        rank=rank,
        likelihood=s.band,
        supporting=tuple(supporting),
        against=tuple(against),
        next_tests=tuple(tests),
        features_used=MappingProxyType(features_used),
        would_change=tuple(would),
        citations=tuple(dict.fromkeys(citations)),
        label=dx.label,
        score=s.score,
        unverified=tuple(dict.fromkeys(unverified)),
        notes=tuple(notes),
        working=MappingProxyType(working),
    )


def differential(case: Case, kb: KnowledgeBase) -> tuple[DifferentialEntry, ...]:
    """Ranked differential diagnosis of the case (outputs.md, ``differential``).

    Parameters
    ----------
    case : Case
        The patient; missing findings are read as unknown, never as normal.
    kb : KnowledgeBase
        Knowledge base; settings ``differential.cml_phase_system``, ``differential.cnl_criteria``
        and ``differential.plr_high_criteria`` choose between editions.

    Returns
    -------
    tuple of DifferentialEntry
        Most likely first. Empty when the WBC is known to be normal and no tissue cytology is
        given, or when nothing in the case supports any diagnosis (e.g. no WBC at all).

    References
    ----------
    clinical.md §7 (Reding 1998, Granger 2009, Kasuga 2001, Arber 2016, ICC 2022), §8 (EMH vs
    myeloid sarcoma on FNAC), §3c (APL, Sanz 2009/2019).
    """
    ctx = _context(case, kb)
    ranked = _score_all(ctx)
    what_if: dict[str, list[_Scored]] = {}  # feature forced present -> ranking, shared by the entries
    return tuple(_entry(ctx, ranked, s, i, what_if) for i, s in enumerate(ranked, start=1))
