"""CML phase under the configured classification (WHO 2016, ELN, WHO 2022, ICC 2022)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leukos.domain.case import Case
from leukos.knowledge import KnowledgeBase
from leukos.knowledge.differential_rules import AREA
from leukos.rules._common import all3
from leukos.rules.differential.facts import fact_value
from leukos.rules.differential.features import Features, checked_rules
from leukos.rules.differential.quantities import MEASURES, compare
from leukos.rules.differential.sources import source_value

__all__ = ["PhaseResult", "cml_phase", "cml_phase_code"]


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


def cml_phase(case: Case, kb: KnowledgeBase, feats: Features | None = None) -> PhaseResult:
    """Phase of CML under ``differential.cml_phase_system``.

    A phase is only named if the case decides it: BP if any blast-phase criterion holds; AP if
    any accelerated-phase criterion holds; CP if every criterion the case can carry is decided
    and none holds. When only the marrow blast % is missing and the blood decides everything
    else, the phase is named from the blood and a note says that a marrow is needed to exclude
    a higher phase. Criteria outside the case format (additional chromosomal abnormalities,
    response to therapy) are never assessed and are listed in the CML entry. ``feats``: the
    differential's features of this case, whose facts and measures are then read, not recomputed.
    """
    rows = kb.derived("differential.cml_phase_rows", _rows)
    strict = _phase_eval(case, kb, rows, feats, blood_only=False)
    if strict.phase is None and case.findings.marrow.blasts_pct is None:
        blood = _phase_eval(case, kb, rows, feats, blood_only=True)
        if blood.phase is not None:
            return PhaseResult(**{**blood.__dict__, "notes": (
                "Marrow blast % not in the case: phase named from the blood only; a marrow is needed to "
                "exclude a higher phase.",)})
    return strict


def _rows(kb: KnowledgeBase) -> list[Mapping[str, Any]]:
    """The phase criteria of the configured classification (once per knowledge base)."""
    system = kb.value(f"{AREA}.cml_phase_system")
    return [r for r in checked_rules(kb).phases if r["system"] == system]


def cml_phase_code(case: Case, kb: KnowledgeBase, feats: Features | None = None) -> str:
    """``cml_phase(case, kb, feats).code`` (CML_BP, CML_AP, CML_CP, or CML when undetermined) without
    the working: the same criteria read the same way, for the ranking alone (which shows no phase)."""
    rows = kb.derived("differential.cml_phase_rows", _rows)
    phase = _phase(_evaluated(case, kb, rows, feats, blood_only=False))
    if phase is None and case.findings.marrow.blasts_pct is None:
        phase = _phase(_evaluated(case, kb, rows, feats, blood_only=True))
    return _CODES[phase]


_CODES = {"BP": "CML_BP", "AP": "CML_AP", "CP": "CML_CP", None: "CML"}
_Evaluated = dict[str, list[tuple[Mapping[str, Any], "bool | None"]]]


def _evaluated(case: Case, kb: KnowledgeBase, rows: list[Mapping[str, Any]], feats: Features | None, *,
               blood_only: bool) -> _Evaluated:
    """Every phase criterion of ``rows`` with its value (True, False or None), by phase (BP, AP, HR)."""
    results: _Evaluated = {"BP": [], "AP": [], "HR": []}
    for r in rows:
        if "fact" in r:
            v = feats.fact(r["fact"]) if feats is not None else fact_value(case, kb, r["fact"])
        else:
            measure = "blasts_pb_pct" if blood_only and r["measure"] == "blasts_any_pct" else r["measure"]
            iv = feats.measure(measure) if feats is not None else MEASURES[measure][0](case)
            v = compare(iv, r["op"], float(r["value"]))
            if "below" in r:
                v = all3([v, compare(iv, "<", float(r["below"]))])
        results[r["phase"]].append((r, v))
    return results


def _phase(results: _Evaluated) -> str | None:
    """BP if any blast-phase criterion holds; AP if any accelerated-phase one does; CP if every required
    criterion is decided; else None (undetermined)."""
    if any(v is True for _, v in results["BP"]):
        return "BP"
    if any(v is True for _, v in results["AP"]):
        return "AP"
    if any(v is None and r.get("required", True) for r, v in results["BP"] + results["AP"]):
        return None
    return "CP"


def _phase_eval(case: Case, kb: KnowledgeBase, rows: list[Mapping[str, Any]], feats: Features | None, *,
                blood_only: bool) -> PhaseResult:
    system = kb.value(f"{AREA}.cml_phase_system")
    results = _evaluated(case, kb, rows, feats, blood_only=blood_only)
    met = [r["text"] for r, v in results["BP"] + results["AP"] if v is True]
    hr = tuple(r["text"] for r, v in results["HR"] if v is True)
    undecided = [(r, v) for r, v in results["BP"] + results["AP"] if v is None]
    blocking = [r for r, _ in undecided if r.get("required", True)]
    not_assessed = tuple(r["text"] for r, _ in undecided if not r.get("required", True))
    not_assessed += tuple(r["text"] for r, v in results["HR"] if v is None)
    missing = sorted({s for r in blocking if "measure" in r for s in MEASURES[r["measure"]][2]
                      if source_value(case, s) is None})
    used = [r for r, v in results["BP"] + results["AP"] + results["HR"] if v is True]
    phase = _phase(results)
    return PhaseResult(
        system=system, phase=phase, code=_CODES[phase], met=tuple(met), high_risk=hr, not_assessed=not_assessed,
        missing=tuple(missing),
        unverified=tuple(r["text"] for r in used if r["status"] == "U"),
        citations=tuple(dict.fromkeys(c for r in (used or rows) for c in r["citations"])),
    )
