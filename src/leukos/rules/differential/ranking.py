"""Scoring and ranking: points per feature, likelihood bands, gates and caps, order."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from leukos.domain.case import Case
from leukos.knowledge import KnowledgeBase
from leukos.knowledge.differential_rules import AREA, CriterionRow, DiagnosisRules, DifferentialRules
from leukos.rules.differential.features import Feature, checked_rules, evaluate_features, known_for
from leukos.rules.differential.quantities import compare, lab
from leukos.rules.differential.sources import source_value

__all__ = ["BANDS", "Context", "Scored", "context", "score_all"]

BANDS = ("low", "moderate", "high")


@dataclass
class Scored:
    dx: DiagnosisRules
    score: float
    band: str
    gate_met: bool
    capped_by: tuple[str, ...]
    fired: list[CriterionRow] = field(default_factory=list)
    # False when the diagnosis names findings without which it never ranks first
    # (``rank_first_requires``) and none of them holds: it is then listed after every other entry.
    may_lead: bool = True

    def key(self) -> tuple[bool, int, float, int]:
        return (self.may_lead, BANDS.index(self.band), self.score, -self.dx.order)


@dataclass
class Context:
    """Everything one call of :func:`differential` computes once and reuses."""

    case: Case
    kb: KnowledgeBase
    rules: DifferentialRules
    feats: Mapping[str, Feature]
    vals: dict[str, bool | None]
    known: dict[str, bool | None]
    in_scope: tuple[DiagnosisRules, ...]
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
            self.sources[path] = source_value(self.case, path)
        return self.sources[path]


def context(case: Case, kb: KnowledgeBase) -> Context:
    rules = checked_rules(kb)
    feats = evaluate_features(case, kb, rules)
    wbc_normal = compare(lab(case, "wbc"), "<=", float(kb.value("hyperleukocytosis.leukocytosis_threshold")))
    tissue = case.findings.tissue_cytology is not None
    in_scope = tuple(dx for dx in rules.diagnoses.values()
                     if not (dx.scope == "blood" and wbc_normal is True) and not (dx.scope == "tissue" and not tissue))
    return Context(case, kb, rules, feats, {n: f.value for n, f in feats.items()},
                {code: known_for(case, code) for code in rules.diagnoses}, in_scope,
                float(kb.value(f"{AREA}.likelihood_high_min_points")),
                float(kb.value(f"{AREA}.likelihood_moderate_min_points")))


def _gate_met(dx: DiagnosisRules, holds: Callable[[str], bool | None]) -> bool:
    for alt in dx.gate:
        if all(holds(t) is True if isinstance(t, str) else any(holds(x) is True for x in t) for t in alt):
            return True
    return False


def _score_one(ctx: Context, dx: DiagnosisRules, forced: Mapping[str, bool]) -> Scored | None:
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
    may_lead = not dx.lead_requires or any(vals[f] is True for f in dx.lead_requires)
    return Scored(dx, score, band, gate, caps, fired, may_lead)


def score_all(ctx: Context, forced: Mapping[str, bool] = MappingProxyType({}),
               base: Mapping[str, Scored | None] | None = None) -> list[Scored]:
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
    out.sort(key=Scored.key, reverse=True)
    return out

