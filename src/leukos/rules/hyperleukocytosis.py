"""Hyperleukocytosis: WBC against the configured threshold, absolute blasts, lineage notes.

References: Ganzel 2012; Röllig 2015 (definition > 100 x10^9/L; > 50 in some sources);
lineage thresholds in knowledge/data/rules/hyperleukocytosis.toml.
"""

from __future__ import annotations

from leukos.domain.assessment import HyperleukocytosisResult
from leukos.domain.case import Case, Diagnosis, GeneticResult, Immunophenotype
from leukos.rules._common import Gaps, lab_working, param_working
from leukos.rules.definitions import CaseInputs, compile_predicate, hyperleukocytosis_present

__all__ = ["assess_hyperleukocytosis", "absolute_blasts", "is_monocytic", "lineage"]


def absolute_blasts(case: Case) -> float | None:
    """Absolute blast count in 10*9/L = WBC x blasts % / 100."""
    wbc, pct = case.value("wbc"), case.value("blasts_pct")
    if wbc is None or pct is None:
        return None
    return wbc * pct / 100.0


def is_monocytic(case: Case) -> bool:
    return case.findings.immunophenotype is Immunophenotype.MONOCYTIC


# The groups :func:`lineage` tests, built once (an enum member read through its class is slow in 3.11).
_APL, _PML_RARA_POSITIVE, _PROMYELOCYTIC = Diagnosis.APL, GeneticResult.POSITIVE, Immunophenotype.PROMYELOCYTIC
_MONOCYTIC = Immunophenotype.MONOCYTIC
_LYMPHOBLASTIC = frozenset({Immunophenotype.B_LYMPHOBLASTIC, Immunophenotype.T_LYMPHOBLASTIC})
_ALL, _CLL, _CML = Diagnosis.ALL, Diagnosis.CLL, frozenset({Diagnosis.CML_CP, Diagnosis.CML})


def lineage(case: Case) -> str | None:
    """The lineage group that changes how a count is read: apl | monocytic | all | cll | cml | None."""
    f = case.findings
    if f.known_diagnosis is _APL or f.gene("pml_rara") is _PML_RARA_POSITIVE or f.immunophenotype is _PROMYELOCYTIC:
        return "apl"
    if f.immunophenotype is _MONOCYTIC:
        return "monocytic"
    if f.known_diagnosis is _ALL or f.immunophenotype in _LYMPHOBLASTIC:
        return "all"
    if f.known_diagnosis is _CLL:
        return "cll"
    if f.known_diagnosis in _CML:
        return "cml"
    return None


# (parameter, its name in the lineage notes' text) of the values the notes quote
_NOTE_VALUES = tuple((k, k.split(".", 1)[1]) for k in (
    "hyperleukocytosis.monocytic_symptomatic_wbc", "hyperleukocytosis.monocytic_blast_note",
    "hyperleukocytosis.all_threshold", "hyperleukocytosis.apl_high_risk_wbc"))


def assess_hyperleukocytosis(case: Case, gaps: Gaps) -> HyperleukocytosisResult:
    kb = gaps.kb
    definition = hyperleukocytosis_present()
    thr = gaps.p(definition.param)
    wbc = case.lab("wbc")
    present = kb.derived("hyperleukocytosis.present", lambda kb: compile_predicate(definition, kb))(CaseInputs(case, kb))
    if wbc is None:
        gaps.need("wbc")
        gaps.cannot("Hyperleukocytosis: no white cell count")
    elif present is None:
        gaps.warn(f"WBC {wbc.describe()} is censored at the analyser limit: hyperleukocytosis cannot be decided.")
    blasts = absolute_blasts(case)
    if wbc is not None and case.lab("blasts_pct") is None:
        gaps.need("blasts_pct")

    notes: list[str] = []
    citations = list(thr.citations)
    group = lineage(case)
    texts = kb.table("hyperleukocytosis")["lineage_notes"]
    values = {name: gaps.v(key) for key, name in _NOTE_VALUES}
    if group is not None:
        notes.append(texts[group].format(**values))
        citations += {
            "apl": kb.param("hyperleukocytosis.apl_high_risk_wbc").citations,
            "monocytic": kb.param("hyperleukocytosis.monocytic_symptomatic_wbc").citations,
            "all": kb.param("hyperleukocytosis.all_threshold").citations,
            "cll": ("hallek_iwcll",),
            "cml": ("uptodate_schiffer",),
        }[group]
    if blasts is not None:
        notes.append(texts["blast_burden"])
        citations.append("porcu2000")

    working = {
        "wbc": lab_working(wbc, case),
        "blasts_pct": lab_working(case.lab("blasts_pct"), case),
        "absolute_blasts_10e9_per_l": None if blasts is None else round(blasts, 3),
        "absolute_blasts_formula": "WBC x blasts % / 100",
        "threshold": param_working(thr),
        "rule": f"present if WBC > {thr.value} x10^9/L",
        "lineage": group,
    }
    return HyperleukocytosisResult(
        present=present,
        threshold_10e9_per_l=float(thr.value),
        wbc_10e9_per_l=None if wbc is None else wbc.value,
        absolute_blasts_10e9_per_l=None if blasts is None else round(blasts, 3),
        lineage_notes=tuple(notes),
        working=working,
        citations=tuple(dict.fromkeys(citations)),
    )
