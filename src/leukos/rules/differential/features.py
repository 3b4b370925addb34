"""Features of the case: each criterion's feature evaluated to yes / no / unknown, with what it read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from leukos.domain.case import Case
from leukos.knowledge import KnowledgeBase, Parameter
from leukos.knowledge.differential_rules import AREA, DifferentialRules, differential_rules, param_key
from leukos.rules.differential.facts import CML_FAMILY, FACTS
from leukos.rules.differential.quantities import DISPLAY, MEASURE_CELL, MEASURES, Interval, compare, derivation

__all__ = ["Feature", "case_features", "evaluate_features", "known_for", "checked_rules"]


def checked_rules(kb: KnowledgeBase) -> DifferentialRules:
    """The checked rules of ``kb``, and a check that every measure and fact they name is implemented."""
    r = differential_rules(kb)
    for name, f in r.features.items():
        if f["kind"] == "measure" and f["measure"] not in MEASURES:
            raise ValueError(f"differential: feature {name} uses unknown measure {f['measure']!r}")
        if f["kind"] == "fact" and name not in FACTS and name != "known_diagnosis":
            raise ValueError(f"differential: fact {name} has no implementation")
    return r


@dataclass(frozen=True)
class Feature:
    name: str
    value: bool | None
    label: str
    sources: tuple[str, ...]
    detail: str = ""  # measured value, e.g. "basophils 3.6 x10^9/L"
    params: tuple[Parameter, ...] = ()


@dataclass(frozen=True)
class _MeasureFeature:
    """A measure feature with everything that does not depend on the case resolved once."""

    name: str
    label: str
    measure: str
    op: str
    threshold: float
    configured: bool
    params: tuple[Parameter, ...]
    sources: tuple[str, ...]


_PLANS: dict[int, tuple[KnowledgeBase, DifferentialRules, tuple[_MeasureFeature | str, ...]]] = {}


def _plan(kb: KnowledgeBase, rules: DifferentialRules) -> tuple[_MeasureFeature | str, ...]:
    """The features in file order: measure features compiled, fact features by name (cached per kb and rules)."""
    hit = _PLANS.get(id(rules))
    if hit is not None and hit[0] is kb and hit[1] is rules:
        return hit[2]
    out: list[_MeasureFeature | str] = []
    for name, spec in rules.features.items():
        if name == "known_diagnosis":
            continue
        if spec["kind"] != "measure":
            out.append(name)
            continue
        params: tuple[Parameter, ...] = ()
        configured = True
        if "param" in spec:
            p = kb.param(param_key(spec["param"]))
            threshold, params, configured = float(p.value), (p,), p.configured
        else:
            threshold = float(spec["value"])
        out.append(_MeasureFeature(name, spec["label"], spec["measure"], spec["op"], threshold, configured, params,
                                   MEASURES[spec["measure"]][2]))
    plan = tuple(out)
    if len(_PLANS) >= 8:
        _PLANS.pop(next(iter(_PLANS)))
    _PLANS[id(rules)] = (kb, rules, plan)
    return plan


def evaluate_features(case: Case, kb: KnowledgeBase, rules: DifferentialRules) -> dict[str, Feature]:
    out: dict[str, Feature] = {}
    measured: dict[str, tuple[Interval | None, str]] = {}  # measure -> (interval, what it read): once per call
    derived: dict[tuple[str, ...], str] = {}  # cells -> derivation text: once per call

    def derive(cells: tuple[str, ...]) -> str:
        text = derived.get(cells)
        if text is None:
            text = derived[cells] = derivation(case, cells)
        return text

    params = _params_of(kb)
    for f in _plan(kb, rules):
        if isinstance(f, str):
            spec = rules.features[f]
            detail, keys = _fact_detail(f, case, kb, derive)
            used = params.get(tuple(keys))
            if used is None:
                used = params[tuple(keys)] = tuple(kb.param(k) for k in keys)
            out[f] = Feature(f, FACTS[f](case, kb), spec["label"], tuple(spec.get("sources", ())), detail, used)
            continue
        hit = measured.get(f.measure)
        if hit is None:
            fn, unit, _ = MEASURES[f.measure]
            iv = fn(case)
            read = "" if iv is None else f"{DISPLAY.get(f.measure, f.measure)} {iv.describe(unit)}".strip()
            cell = MEASURE_CELL.get(f.measure)
            worked = derive((cell,)) if cell and iv is not None else ""
            if worked:
                read += f"; {worked}"
            hit = measured[f.measure] = (iv, read)
        iv, detail = hit
        value = compare(iv, f.op, f.threshold) if f.configured else None
        if not f.configured and iv is not None:
            detail += f" (not assessed: set {f.params[0].key} to your laboratory's limit)"
        out[f.name] = Feature(f.name, value, f.label, f.sources, detail, f.params)
    return out


_CYTOKINE_NAMES = {"g_csf": "G-CSF", "gm_csf": "GM-CSF", "il6": "IL-6"}


_PARAMS: dict[int, tuple[KnowledgeBase, dict[tuple[str, ...], tuple[Parameter, ...]]]] = {}


def _params_of(kb: KnowledgeBase) -> dict[tuple[str, ...], tuple[Parameter, ...]]:
    """Parameters by key list, filled as facts ask for them (knowledge is immutable: cached per kb)."""
    hit = _PARAMS.get(id(kb))
    if hit is not None and hit[0] is kb:
        return hit[1]
    if len(_PARAMS) >= 8:
        _PARAMS.pop(next(iter(_PARAMS)))
    cache: dict[tuple[str, ...], tuple[Parameter, ...]] = {}
    _PARAMS[id(kb)] = (kb, cache)
    return cache


def _fact_detail(name: str, case: Case, kb: KnowledgeBase,
                 derive: Callable[[tuple[str, ...]], str]) -> tuple[str, list[str]]:
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
    if name == "monocytosis":
        return derive(("monocytes",)), [f"{AREA}.cmml_monocytes_abs_min", f"{AREA}.cmml_monocytes_pct_min"]
    if name == "cmml_prerequisites":
        return derive(("monocytes",)), [f"{AREA}.cmml_monocytes_abs_min", f"{AREA}.cmml_monocytes_pct_min",
                                                  f"{AREA}.acute_blast_pct"]
    if name == "cmml_supporting":
        return derive(("monocytes",)), [f"{AREA}.cmml_monocytes_abs_min",
                                                  f"{AREA}.cmml_monocytes_abs_one_criterion_min"]
    if name == "pmf_criteria":
        return "", [f"{AREA}.pmf_fibrosis_min_grade", f"{AREA}.pmf_wbc_min"]
    if name in ("acml_blood_picture", "acml_criteria"):
        return derive(("monocytes", "basophils")), [
            f"{AREA}.{k}" for k in ("acml_wbc_min", "acml_precursors_min_pct", "acml_monocytes_max_pct",
                                    "acml_basophils_max_pct", "acute_blast_pct")]
    if name == "persistent_leukocytosis":
        return "", [f"{AREA}.cnl_persistence_days", f"{AREA}.cnl_wbc_min"]
    return "", []


def case_features(case: Case, kb: KnowledgeBase) -> Mapping[str, bool | None]:
    """Every feature of the differential for this case: True, False or None (unknown).

    ``known_diagnosis`` is per diagnosis and appears as ``known_diagnosis:<CODE>``.
    """
    rules = checked_rules(kb)
    feats = {n: f.value for n, f in evaluate_features(case, kb, rules).items()}
    for code in rules.diagnoses:
        feats[f"known_diagnosis:{code}"] = known_for(case, code)
    return MappingProxyType(feats)


def known_for(case: Case, code: str) -> bool | None:
    k = case.findings.known_diagnosis
    if k is None:
        return None
    return ("CML" if k in CML_FAMILY else k.value) == code

