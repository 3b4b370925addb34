"""Scoring and ranking: points per feature, likelihood bands, gates and caps, order."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from leukos.domain.case import Case
from leukos.knowledge import KnowledgeBase
from leukos.knowledge.differential_rules import AREA, CriterionRow, DiagnosisRules, DifferentialRules
from leukos.rules.differential.features import Features, checked_rules, known_for
from leukos.rules.differential.quantities import compare, lab
from leukos.rules.differential.sources import source_value

__all__ = ["BANDS", "Context", "Scored", "context", "score_all", "rank_if_present"]

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
    feats: Features
    vals: dict[str, bool | None]
    known: dict[str, bool | None]
    in_scope: tuple[DiagnosisRules, ...]
    high_min: float
    mod_min: float
    sources: dict[str, Any] = field(default_factory=dict)
    # feature values with ``known_diagnosis`` set, by that value (True, False or None): at most three
    # dicts however many diagnoses there are (each is only read)
    _by_known: dict[bool | None, dict[str, bool | None]] = field(default_factory=dict)
    # what-if cache: feature forced present -> {code: (order key, likelihood), or None when then not listed}
    # of the diagnoses that read it (the others keep their ``_base_keys``)
    _if_present: dict[str, dict[str, tuple[tuple, str] | None]] = field(default_factory=dict)
    _base_keys: dict[str, tuple[tuple, str]] | None = None  # code -> (order key, likelihood) of the ranking
    _base_sorted: list[tuple] = field(default_factory=list)  # the order keys of the ranking, ascending
    _index: dict[str, int] = field(default_factory=dict)  # code -> position in in_scope
    _state: dict[str, tuple[float, bool, bool, bool, bool]] = field(default_factory=dict)  # code -> state as is
    read_by: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)  # feature -> (case field, value) read
    _compiled: tuple[dict[str, _Compiled], dict[str, tuple[str, ...]]] | None = None  # ``_compiled(rules)``

    def vals_for(self, code: str) -> dict[str, bool | None]:
        """Feature values as this diagnosis sees them (``known_diagnosis`` is per diagnosis)."""
        known = self.known[code]
        v = self._by_known.get(known)
        if v is None:
            v = self._by_known[known] = {**self.vals, "known_diagnosis": known}
        return v

    def source(self, path: str) -> Any:
        if path not in self.sources:
            self.sources[path] = source_value(self.case, path)
        return self.sources[path]


def context(case: Case, kb: KnowledgeBase) -> Context:
    rules = checked_rules(kb)
    feats = Features(case, kb, rules)
    wbc_normal = compare(lab(case, "wbc"), "<=", float(kb.value("hyperleukocytosis.leukocytosis_threshold")))
    tissue = case.findings.tissue_cytology is not None
    in_scope = tuple(dx for dx in rules.diagnoses.values()
                     if not (dx.scope == "blood" and wbc_normal is True) and not (dx.scope == "tissue" and not tissue))
    return Context(case, kb, rules, feats, feats.values,
                {code: known_for(case, code) for code in rules.diagnoses}, in_scope,
                float(kb.value(f"{AREA}.likelihood_high_min_points")),
                float(kb.value(f"{AREA}.likelihood_moderate_min_points")))


def _score_one(ctx: Context, dx: DiagnosisRules, forced: Mapping[str, bool]) -> Scored | None:
    """The diagnosis scored, or None when no supporting or context row holds (it is then not listed).

    One pass over the compiled rows (:func:`_compiled`): the points, whether a row of weight >= 0
    holds and the rows that fired, in row order (the score is their sum in that order)."""
    vals = ctx.vals_for(dx.code)
    if forced:
        vals = {**vals, **forced}
    c = _compiled_of(ctx)[0][dx.code]
    fired: list[CriterionRow] = []
    score: float = 0
    listed = False
    for name, weight, row in c.scored_rows:
        if vals[name] is True:
            fired.append(row)
            score += weight
            if weight >= 0:
                listed = True
    if not listed:
        return None
    gate = _gate_holds(vals, None, c.gate)
    caps = tuple(x for x in c.caps if vals[x] is True) if c.caps else ()
    band = "high" if score >= ctx.high_min else "moderate" if score >= ctx.mod_min else "low"
    if band == "high" and not gate:
        band = "moderate"
    if caps:
        band = "low"
    may_lead = not c.lead or _any_holds(vals, None, c.lead)
    return Scored(dx, score, band, gate, caps, fired, may_lead)


def score_all(ctx: Context, forced: Mapping[str, bool] = MappingProxyType({})) -> list[Scored]:
    """Score and rank every diagnosis in scope (with the ``forced`` feature values, if any)."""
    out = []
    for dx in ctx.in_scope:
        scored = _score_one(ctx, dx, forced)
        if scored is not None:
            out.append(scored)
    out.sort(key=Scored.key, reverse=True)
    return out


# --- What if an unknown feature were present? -------------------------------------------------
# Same answer as ``score_all(ctx, {feature: True})`` (a test checks it against that), computed
# cheaply: the rules are compiled once per rules object (they are immutable), only the diagnoses
# whose criteria read the feature are scored again, and a rank is a count instead of a sort.

@dataclass(frozen=True)
class _Compiled:
    rows: tuple[tuple[str, float], ...]
    scored_rows: tuple[tuple[str, float, CriterionRow], ...]  # (feature, weight, row) in row order
    gate: tuple[tuple[tuple[str, ...], ...], ...]  # alternatives of terms; a term holds if any of its names does
    caps: tuple[str, ...]
    lead: tuple[str, ...]
    order: int
    weights_of: Mapping[str, tuple[float, ...]]  # feature -> the weights of its rows
    gate_with: Mapping[str, tuple[tuple[tuple[str, ...], ...], ...]]  # feature -> the gate alternatives naming it
    exact: bool  # integral weights: a sum in any order equals the row-order sum


def _compile(dx: DiagnosisRules) -> _Compiled:
    rows = tuple((r.feature, r.weight) for r in dx.rows)
    gate = tuple(tuple((t,) if isinstance(t, str) else tuple(t) for t in alt) for alt in dx.gate)
    weights: dict[str, list[float]] = {}
    for name, w in rows:
        weights.setdefault(name, []).append(w)
    gate_with: dict[str, list[tuple[tuple[str, ...], ...]]] = {}
    for alt in gate:
        for name in dict.fromkeys(x for term in alt for x in term):
            gate_with.setdefault(name, []).append(alt)
    exact = all(float(w).is_integer() and abs(w) < 2 ** 40 for _, w in rows)
    return _Compiled(rows, tuple((r.feature, r.weight, r) for r in dx.rows), gate, dx.caps, dx.lead_requires, dx.order,
                     MappingProxyType({k: tuple(v) for k, v in weights.items()}),
                     MappingProxyType({k: tuple(v) for k, v in gate_with.items()}), exact)


_COMPILED: dict[int, tuple[DifferentialRules, dict[str, _Compiled], dict[str, tuple[str, ...]]]] = {}


def _compiled(rules: DifferentialRules) -> tuple[dict[str, _Compiled], dict[str, tuple[str, ...]]]:
    """Per diagnosis its compiled criteria; per feature the diagnoses that read it (cached per rules object)."""
    hit = _COMPILED.get(id(rules))
    if hit is not None and hit[0] is rules:
        return hit[1], hit[2]
    comp = {code: _compile(dx) for code, dx in rules.diagnoses.items()}
    readers: dict[str, list[str]] = {}
    for code, names in rules.mentions.items():
        for name in names:
            readers.setdefault(name, []).append(code)
    inverse = {name: tuple(codes) for name, codes in readers.items()}
    if len(_COMPILED) >= 8:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[id(rules)] = (rules, comp, inverse)
    return comp, inverse


def _compiled_of(ctx: Context) -> tuple[dict[str, _Compiled], dict[str, tuple[str, ...]]]:
    """:func:`_compiled` of the context's rules, looked up once per call."""
    compiled = ctx._compiled
    if compiled is None:
        compiled = ctx._compiled = _compiled(ctx.rules)
    return compiled


def _full_key(key: tuple, idx: int) -> tuple:
    # the stable sort keeps in-scope order among equal keys: an earlier diagnosis ranks first
    return (*key, -idx)


def _any_holds(vals: Mapping[str, bool | None], feature: str | None, names: tuple[str, ...]) -> bool:
    for x in names:
        if x == feature or vals[x] is True:
            return True
    return False


def _gate_holds(vals: Mapping[str, bool | None], feature: str | None,
                alts: tuple[tuple[tuple[str, ...], ...], ...]) -> bool:
    """Whether one alternative has every term holding (a term holds if any of its names does)."""
    for alt in alts:
        for term in alt:
            if not _any_holds(vals, feature, term):
                break
        else:
            return True
    return False


def _state(vals: Mapping[str, bool | None], c: _Compiled, feature: str | None) -> tuple[float, bool, bool, bool, bool]:
    """(score, listed, gate met, capped, may lead) with ``feature`` read as present (None: as it is)."""
    score: float = 0
    listed = False
    for name, weight in c.rows:
        if name == feature or vals[name] is True:
            score += weight
            if weight >= 0:
                listed = True
    gate = _gate_holds(vals, feature, c.gate)
    capped = _any_holds(vals, feature, c.caps)
    may_lead = not c.lead or _any_holds(vals, feature, c.lead)
    return score, listed, gate, capped, may_lead


def _key_if_present(ctx: Context, code: str, c: _Compiled, idx: int, feature: str) -> tuple[tuple, str] | None:
    # From the diagnosis's state without the feature: present, it only adds its rows' points, may
    # complete a gate alternative that names it, and caps or lets lead only if listed there.
    vals = ctx.vals_for(code)
    base = ctx._state.get(code)
    if base is None:
        base = ctx._state[code] = _state(vals, c, None)
    weights = c.weights_of.get(feature)
    if weights and not c.exact:
        score, listed, gate, capped, may_lead = _state(vals, c, feature)
    else:
        score, listed, gate, capped, may_lead = base
        if weights:
            score += sum(weights)
            listed = listed or any(w >= 0 for w in weights)
        gate = gate or _gate_holds(vals, feature, c.gate_with.get(feature, ()))
        capped = capped or feature in c.caps
        may_lead = may_lead or feature in c.lead
    if not listed:
        return None
    band = "high" if score >= ctx.high_min else "moderate" if score >= ctx.mod_min else "low"
    if band == "high" and not gate:
        band = "moderate"
    if capped:
        band = "low"
    return (may_lead, BANDS.index(band), score, -c.order, -idx), band


def rank_if_present(ctx: Context, ranked: list[Scored], code: str, feature: str) -> tuple[str, int] | None:
    """Likelihood and rank of diagnosis ``code`` if ``feature`` were present; None if it would not be listed.

    ``ranked`` is ``score_all(ctx)``. Equal to looking ``code`` up in ``score_all(ctx, {feature: True})``.
    """
    idx = ctx._index
    base = ctx._base_keys
    if base is None:
        idx.update((dx.code, i) for i, dx in enumerate(ctx.in_scope))
        base = ctx._base_keys = {s.dx.code: (_full_key(s.key(), idx[s.dx.code]), s.band) for s in ranked}
        ctx._base_sorted = sorted(k for k, _ in base.values())
    new = ctx._if_present.get(feature)
    if new is None:  # the diagnoses that read the feature, as they would be with it present
        comp, inverse = _compiled_of(ctx)
        new = ctx._if_present[feature] = {c: _key_if_present(ctx, c, comp[c], idx[c], feature)
                                          for c in inverse.get(feature, ()) if c in idx}
    mine = new[code] if code in new else base.get(code)
    if mine is None:
        return None
    # Its rank: one more than the number of listed diagnoses ordered before it. Keys end with the
    # in-scope position, so no two are equal: those of the ranking as it is that are greater
    # (a bisection of the sorted keys), less those that move, plus those that move above it.
    key = mine[0]
    before = len(ctx._base_sorted) - bisect_right(ctx._base_sorted, key)
    for c, moved in new.items():
        was = base.get(c)
        if was is not None and was[0] > key:
            before -= 1
        if moved is not None and moved[0] > key:
            before += 1
    return mine[1], before + 1
