"""Features of the case: each criterion's feature evaluated to yes / no / unknown, with what it read."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from leukos.domain.case import Case
from leukos.knowledge import KnowledgeBase, Parameter
from leukos.knowledge.differential_rules import AREA, DifferentialRules, differential_rules, param_key
from leukos.rules.differential.facts import CML_FAMILY, FACTS
from leukos.rules.differential.quantities import COMPARE, DISPLAY, MEASURE_CELL, MEASURES, Interval, derivation

__all__ = ["Feature", "Features", "case_features", "evaluate_features", "known_for", "checked_rules"]


def checked_rules(kb: KnowledgeBase) -> DifferentialRules:
    """The checked rules of ``kb``, and a check that every measure and fact they name is implemented
    (checked once per knowledge base)."""
    return kb.derived("differential.checked_rules", _check_implemented)


def _check_implemented(kb: KnowledgeBase) -> DifferentialRules:
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


@dataclass(frozen=True)
class _Plan:
    """The features of a rules object, in file order, with everything that does not depend on the case
    resolved once: ``by_name`` (a measure feature compiled, a fact by its name) and ``steps``, what
    computing the values runs (name, fact function or None, measure, measure function, comparison,
    threshold, configured)."""

    by_name: dict[str, _MeasureFeature | str]
    steps: tuple[tuple[str, Callable | None, str, Callable | None, Callable | None, float, bool], ...]


_PLANS: dict[int, tuple[KnowledgeBase, DifferentialRules, _Plan]] = {}


def _plan(kb: KnowledgeBase, rules: DifferentialRules) -> _Plan:
    """The features planned (cached per kb and rules: both immutable)."""
    hit = _PLANS.get(id(rules))
    if hit is not None and hit[0] is kb and hit[1] is rules:
        return hit[2]
    by_name: dict[str, _MeasureFeature | str] = {}
    for name, spec in rules.features.items():
        if name == "known_diagnosis":
            continue
        if spec["kind"] != "measure":
            by_name[name] = name
            continue
        params: tuple[Parameter, ...] = ()
        configured = True
        if "param" in spec:
            p = kb.param(param_key(spec["param"]))
            threshold, params, configured = float(p.value), (p,), p.configured
        else:
            threshold = float(spec["value"])
        if spec["op"] not in COMPARE:
            raise ValueError(f"unknown comparison {spec['op']!r}")
        by_name[name] = _MeasureFeature(name, spec["label"], spec["measure"], spec["op"], threshold, configured, params,
                                        MEASURES[spec["measure"]][2])
    steps = tuple((name, FACTS[f], "", None, None, 0.0, True) if isinstance(f, str) else
                  (name, None, f.measure, MEASURES[f.measure][0], COMPARE[f.op], f.threshold, f.configured)
                  for name, f in by_name.items())
    plan = _Plan(by_name, steps)
    if len(_PLANS) >= 8:
        _PLANS.pop(next(iter(_PLANS)))
    _PLANS[id(rules)] = (kb, rules, plan)
    return plan


class Features(Mapping[str, Feature]):
    """The features of one case, in file order: every value computed at once (the ranking needs them
    all), each :class:`Feature` with its label, what it read and its parameters built when first asked
    for (only an explanation reads them, and only some)."""

    def __init__(self, case: Case, kb: KnowledgeBase, rules: DifferentialRules):
        self._case, self._kb, self._rules = case, kb, rules
        plan = _plan(kb, rules)
        self._plan = plan.by_name
        self._built: dict[str, Feature] = {}
        self._measured: dict[str, Interval | None] = {}  # measure -> interval: once per call
        self._read: dict[str, str] = {}  # measure -> what it read: once per call
        self._derived: dict[tuple[str, ...], str] = {}  # cells -> derivation text: once per call
        self._facts: dict[str, bool | None] = {}  # facts read that are not features (or not yet): once per call
        values: dict[str, bool | None] = {}
        self.values = values
        measured, facts, fact_of = self._measured, self._facts, self.fact
        for name, fact, measure, measure_fn, cmp, threshold, configured in plan.steps:
            if fact is not None:
                values[name] = facts[name] if name in facts else fact(case, kb, fact_of)
                continue
            if measure in measured:
                iv = measured[measure]
            else:
                iv = measured[measure] = measure_fn(case)
            values[name] = cmp(iv, threshold) if configured else None

    def __getitem__(self, name: str) -> Feature:
        hit = self._built.get(name)
        if hit is None:
            if name not in self._plan:
                raise KeyError(name)
            hit = self._built[name] = self._build(name)
        return hit

    def get(self, name: str, default: Feature | None = None) -> Feature | None:  # type: ignore[override]
        return self[name] if name in self._plan else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._plan)

    def __len__(self) -> int:
        return len(self._plan)

    def __contains__(self, name: object) -> bool:
        return name in self._plan

    def fact(self, name: str) -> bool | None:
        """Fact ``name`` of :data:`FACTS`, computed once per call: the value of the feature when it is
        one, else computed (reading the facts it is built from through this method) and kept."""
        values = self.values
        if name in values:
            return values[name]
        facts = self._facts
        if name not in facts:
            facts[name] = FACTS[name](self._case, self._kb, self.fact)
        return facts[name]

    def measure(self, name: str) -> Interval | None:
        """Measure ``name`` of :data:`MEASURES` (computed once per case)."""
        if name in self._measured:
            return self._measured[name]
        iv = self._measured[name] = MEASURES[name][0](self._case)
        return iv

    def _derive(self, cells: tuple[str, ...]) -> str:
        text = self._derived.get(cells)
        if text is None:
            text = self._derived[cells] = derivation(self._case, cells)
        return text

    def _build(self, name: str) -> Feature:
        case, kb, f = self._case, self._kb, self._plan[name]
        value = self.values[name]
        if isinstance(f, str):
            spec = self._rules.features[f]
            detail, keys = _fact_detail(f, case, kb, self._derive)
            params = _params_of(kb)
            used = params.get(tuple(keys))
            if used is None:
                used = params[tuple(keys)] = tuple(kb.param(k) for k in keys)
            return Feature(f, value, spec["label"], tuple(spec.get("sources", ())), detail, used)
        iv = self._measured[f.measure]
        read = self._read.get(f.measure)
        if read is None:
            unit = MEASURES[f.measure][1]
            read = "" if iv is None else f"{DISPLAY.get(f.measure, f.measure)} {iv.describe(unit)}".strip()
            cell = MEASURE_CELL.get(f.measure)
            worked = self._derive((cell,)) if cell and iv is not None else ""
            if worked:
                read += f"; {worked}"
            self._read[f.measure] = read
        detail = read
        if not f.configured and iv is not None:
            detail += f" (not assessed: set {f.params[0].key} to your laboratory's limit)"
        return Feature(f.name, value, f.label, f.sources, detail, f.params)


def evaluate_features(case: Case, kb: KnowledgeBase, rules: DifferentialRules) -> dict[str, Feature]:
    """Every feature of the case with what it read (:class:`Features`, all built)."""
    return dict(Features(case, kb, rules).items())


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
    feats = dict(Features(case, kb, rules).values)
    for code in rules.diagnoses:
        feats[f"known_diagnosis:{code}"] = known_for(case, code)
    return MappingProxyType(feats)


def known_for(case: Case, code: str) -> bool | None:
    k = case.findings.known_diagnosis
    if k is None:
        return None
    return ("CML" if k in CML_FAMILY else k.value) == code

