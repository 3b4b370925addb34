"""Leukostasis grade 0-3 after Novotny 2005.

Organ grades come from the clinician's override (``leukostasis_grades``) or else from the
recorded symptoms, each term's grade being data (knowledge/data/symptoms.toml, from the
candidate table of clinical.md §2, status U). The overall grade aggregates the organ grades by
a configurable rule (``leukostasis.aggregation``); the result is always flagged unverified
because the original grading table was not retrieved.
"""

from __future__ import annotations

from leukos.domain.assessment import HyperleukocytosisResult, LeukostasisResult
from leukos.domain.case import ORGANS, Case
from leukos.rules._common import Gaps, above, param_working
from leukos.rules.hyperleukocytosis import is_monocytic

__all__ = ["assess_leukostasis", "aggregate"]


def aggregate(organ_grades: dict[str, int], rule: str) -> int:
    """Overall grade from the organ grades.

    ``max``: the highest organ grade. ``max_multi_organ_for_3``: as ``max``, but grade 3 needs
    at least two organs at grade >= 2 (otherwise 2).
    """
    if not organ_grades:
        return 0
    top = max(organ_grades.values())
    if rule == "max_multi_organ_for_3" and top == 3 and sum(g >= 2 for g in organ_grades.values()) < 2:
        return 2
    return top


def assess_leukostasis(case: Case, hl: HyperleukocytosisResult, gaps: Gaps) -> LeukostasisResult:
    kb = gaps.kb
    rule_p = gaps.p("leukostasis.aggregation")
    scope_p = gaps.p("leukostasis.applies_from_wbc")
    labels = kb.table("leukostasis")["labels"]
    citations = ["novotny2005", "piccirillo2008"]
    notes: list[str] = []

    # Organ grades: override first, then symptoms.
    organ: dict[str, int | None] = {}
    basis: dict[str, list[str]] = {o: [] for o in ORGANS}
    ungraded: list[str] = []
    symptoms = case.symptoms
    for o in ORGANS:
        if o in case.leukostasis_grades:
            organ[o] = int(case.leukostasis_grades[o])
            basis[o].append(f"clinician grade {organ[o]}")
            continue
        if symptoms is None:
            organ[o] = None
            continue
        g = 0
        for term in symptoms:
            s = kb.symptoms[term]
            if s.organ != o:
                continue
            if s.grade is None:
                ungraded.append(term)
                basis[o].append(f"{term}: {s.grade_basis}")
            else:
                g = max(g, s.grade)
                basis[o].append(f"{term} -> {s.grade} ({s.grade_basis})")
        organ[o] = g

    if symptoms is None and not case.leukostasis_grades:
        gaps.need("symptoms")
        gaps.cannot("Leukostasis grade: symptoms not recorded (give symptoms: [] if there are none)")
    if ungraded:
        notes.append(
            "Recorded but not placed by the grading table: " + ", ".join(ungraded)
            + ". They do not raise the grade by themselves; set leukostasis_grades for the organ if they are due to leukostasis.")
        gaps.warn("Symptoms outside the grading table (" + ", ".join(ungraded)
                  + "): the leukostasis grade may underestimate; the clinician should grade the organ.")

    # Applicability: the score grades symptoms in hyperleukocytic leukaemia.
    applicable: bool | None
    if scope_p.value == "any":
        applicable = True
    else:
        mono_thr = gaps.p("hyperleukocytosis.monocytic_symptomatic_wbc")
        mono = above(case.lab("wbc"), float(mono_thr.value), inclusive=False) if is_monocytic(case) else False
        applicable = True if (hl.present is True or mono is True) else \
            (None if (hl.present is None or mono is None) else False)
        if mono is True and hl.present is not True:
            notes.append(f"Monocytic AML above {mono_thr.value} x10^9/L: graded although below the hyperleukocytosis threshold.")
            citations += list(mono_thr.citations)
    overridden = bool(case.leukostasis_grades)
    if applicable is False and overridden:
        applicable = True
        notes.append("Graded because the clinician gave organ grades, although hyperleukocytosis is absent.")

    known = {o: g for o, g in organ.items() if g is not None}
    if applicable is False:
        grade: int | None = 0
        notes.append("Not applicable: no hyperleukocytosis. Symptoms, if any, are not attributed to leukostasis.")
    elif applicable is None:
        grade = None
    elif not known:
        grade = None
    else:
        grade = aggregate(known, str(rule_p.value))
        if len(known) < len(ORGANS) and grade < 3:
            notes.append("Some organs were not assessed: the grade is a lower bound.")

    if case.value("pao2") is not None and any(s in (symptoms or ()) for s in ("hypoxemia",)):
        notes.append("Hypoxaemia may be spurious in hyperleukocytosis (leukocyte larceny): check SpO2 (see artefacts).")
    notes.append("Grading table and aggregation rule unverified against Novotny 2005 (status U).")

    working = {
        "organ_basis": {o: b for o, b in basis.items()},
        "aggregation": param_working(rule_p),
        "applies": param_working(scope_p),
        "hyperleukocytosis_present": hl.present,
        "symptoms": list(symptoms) if symptoms is not None else None,
        "clinician_grades": dict(case.leukostasis_grades),
    }
    return LeukostasisResult(
        grade=grade,
        label=None if grade is None else labels[str(grade)],
        organ_grades=organ,
        applicable=applicable,
        unverified=True,
        notes=tuple(notes),
        working=working,
        citations=tuple(dict.fromkeys(citations)),
    )
