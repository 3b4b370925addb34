"""The differential rules file (``data/rules/differential.toml``) read into typed values and checked.

The rules package evaluates these values; this module only parses and validates them, so that a
broken rules file fails when the knowledge base loads (a developer error, ``ValueError``), not in
the middle of an assessment. The grammar is documented at the top of the TOML file.

Invariants checked (they make the ranking monotone, see :mod:`leukos.rules.differential`): every
diagnosis code is a case-format code; every criterion names a declared feature, has a V/P/U status
and resolvable citations; a gate term and a ``rank_first_requires`` term are always supporting
(weight >= 0) features of their diagnosis, a cap feature always an opposing one, and no feature both supports and opposes the same
diagnosis; next tests exist and cite resolvable keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from leukos.domain.case import Diagnosis

if TYPE_CHECKING:
    from leukos.knowledge.base import KnowledgeBase

__all__ = ["AREA", "CriterionRow", "DiagnosisRules", "DifferentialRules", "differential_rules", "gate_terms",
           "param_key"]

AREA = "differential"
STATUSES = ("V", "P", "U")


@dataclass(frozen=True)
class CriterionRow:
    """One (diagnosis, feature, weight) row with the status and citations of the association."""

    code: str
    feature: str
    weight: float
    status: str
    citations: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class DiagnosisRules:
    """Everything the rules file says about one diagnosis."""

    code: str
    label: str
    scope: str
    order: int
    gate: tuple[tuple[Any, ...], ...]
    caps: tuple[str, ...]
    next_tests: tuple[str, ...]
    notes: tuple[str, ...]
    outside: tuple[str, ...]
    rows: tuple[CriterionRow, ...]
    lead_requires: tuple[str, ...] = ()  # rank_first_requires: never first unless one of these holds


@dataclass(frozen=True)
class DifferentialRules:
    """The parsed rules of one knowledge base (edition settings already applied)."""

    features: Mapping[str, Mapping[str, Any]]
    diagnoses: Mapping[str, DiagnosisRules]
    tests: Mapping[str, Mapping[str, Any]]
    phases: tuple[Mapping[str, Any], ...]
    mentions: Mapping[str, frozenset[str]]  # code -> features its rows, gate and caps read


def param_key(name: str) -> str:
    """``name`` of the differential file, or an ``area.name`` key of another rules file."""
    return name if "." in name else f"{AREA}.{name}"


def gate_terms(dx: DiagnosisRules) -> set[str]:
    out: set[str] = set()
    for alt in dx.gate:
        for term in alt:
            out.update([term] if isinstance(term, str) else term)
    return out


_CACHE: dict[int, tuple[KnowledgeBase, DifferentialRules]] = {}
_CACHE_MAX = 8


def differential_rules(kb: KnowledgeBase) -> DifferentialRules:
    """The parsed and checked differential rules of ``kb`` (cached per knowledge-base object).

    Raises
    ------
    ValueError
        When the rules file breaks an invariant (a developer error).
    """
    hit = _CACHE.get(id(kb))
    if hit is not None and hit[0] is kb:
        return hit[1]
    rules = _parse(kb)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[id(kb)] = (kb, rules)
    return rules


def _parse(kb: KnowledgeBase) -> DifferentialRules:
    t = kb.table(AREA)
    rows: dict[str, list[CriterionRow]] = {}
    for r in t["criteria"]:
        if "setting" in r and kb.value(param_key(r["setting"])) != r["when"]:
            continue
        rows.setdefault(r["code"], []).append(CriterionRow(r["code"], r["feature"], float(r["weight"]), r["status"],
                                                           tuple(r["citations"]), r["text"]))
    dxs = {}
    for code, d in t["diagnoses"].items():
        gate = d.get("high_requires", [])
        if "gate_setting" in d:
            gate = gate[kb.value(param_key(d["gate_setting"]))]
        dxs[code] = DiagnosisRules(code, d["label"], d["scope"], int(d["order"]),
                                   tuple(tuple(alt) for alt in gate), tuple(d.get("cap_low_if", ())),
                                   tuple(d.get("next_tests", ())), tuple(d.get("notes", ())),
                                   tuple(d.get("outside_case_format", ())), tuple(rows.get(code, ())),
                                   tuple(d.get("rank_first_requires", ())))
    mentions = {code: frozenset({r.feature for r in dx.rows} | gate_terms(dx) | set(dx.caps) | set(dx.lead_requires))
                for code, dx in dxs.items()}
    rules = DifferentialRules(MappingProxyType(dict(t["features"])), MappingProxyType(dxs),
                              MappingProxyType(dict(t["tests"])), tuple(t["cml_phase"]), MappingProxyType(mentions))
    _check(rules, kb)
    return rules


def _check(rules: DifferentialRules, kb: KnowledgeBase) -> None:
    """Developer errors in the rules file: fail loudly (the invariants the ranking relies on)."""
    known = set(rules.features)
    for dx in rules.diagnoses.values():
        if dx.code not in Diagnosis.__members__:
            raise ValueError(f"differential: unknown diagnosis code {dx.code!r}")
        weights: dict[str, set[int]] = {}
        for r in dx.rows:
            if r.feature not in known:
                raise ValueError(f"differential: {dx.code} uses unknown feature {r.feature!r}")
            if r.status not in STATUSES:
                raise ValueError(f"differential: {dx.code}/{r.feature} status {r.status!r}")
            if not r.citations:
                raise ValueError(f"differential: {dx.code}/{r.feature} has no citation")
            for c in r.citations:
                if c not in kb.citations:
                    raise ValueError(f"differential: {dx.code}/{r.feature} cites unknown key {c!r}")
            weights.setdefault(r.feature, set()).add((r.weight > 0) - (r.weight < 0))
        for f, signs in weights.items():
            if -1 in signs and signs - {-1}:  # weight >= 0 counts as supporting (context included)
                raise ValueError(f"differential: {f} both supports and opposes {dx.code}")
        supporting = {f for f, s in weights.items() if -1 not in s}
        opposing = {f for f, s in weights.items() if -1 in s}
        if not gate_terms(dx) <= supporting:
            raise ValueError(f"differential: gate of {dx.code} uses non-supporting {gate_terms(dx) - supporting}")
        if not set(dx.lead_requires) <= supporting:
            raise ValueError(f"differential: rank_first_requires of {dx.code} uses non-supporting "
                             f"{set(dx.lead_requires) - supporting}")
        if not set(dx.caps) <= opposing:
            raise ValueError(f"differential: caps of {dx.code} are not opposing: {set(dx.caps) - opposing}")
        for test in dx.next_tests:
            if test not in rules.tests:
                raise ValueError(f"differential: {dx.code} names unknown test {test!r}")
    for name, f in rules.features.items():
        if f.get("kind") not in ("measure", "fact"):
            raise ValueError(f"differential: feature {name} has kind {f.get('kind')!r}")
        if f["kind"] == "measure":
            if "param" in f:
                kb.param(param_key(f["param"]))  # KeyError names a missing threshold
            elif "value" not in f:
                raise ValueError(f"differential: measure feature {name} has neither param nor value")
    for key, test in rules.tests.items():
        for c in test["citations"]:
            if c not in kb.citations:
                raise ValueError(f"differential: test {key} cites unknown key {c!r}")
    for row in rules.phases:
        if row.get("status") not in STATUSES:
            raise ValueError(f"differential: CML phase row {row.get('text')!r} status {row.get('status')!r}")
        for c in row["citations"]:
            if c not in kb.citations:
                raise ValueError(f"differential: CML phase row cites unknown key {c!r}")
