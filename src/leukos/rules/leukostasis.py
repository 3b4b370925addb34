"""Leukostasis grade 0-3 after Novotny 2005.

Organ grades come from the clinician's override (``leukostasis_grades``) or else from the
recorded symptoms. Every term of the vocabulary (knowledge/data/symptoms.toml) is placed in an
organ and a grade by the candidate grading table: named by the table, or by its closest row
(status U, the reason in ``grade_basis``); a term with no plausible link to leukostasis
(fever, fatigue, ...) is not graded and is listed in the output. The overall grade aggregates the
organ grades by a configurable rule (``leukostasis.aggregation``); the result is always flagged
unverified because the original grading table was not retrieved.
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
    symptoms = case.symptoms
    placed = [kb.symptoms[t] for t in (symptoms or ()) if kb.symptoms[t].placement != "ungraded"]
    ungraded = [t for t in (symptoms or ()) if kb.symptoms[t].placement == "ungraded"]
    closest = [s.term for s in placed if s.placement == "closest_row"]
    for s in placed:
        citations += list(s.placement_citations)

    # Organ grades: override first, then symptoms.
    organ: dict[str, int | None] = {}
    basis: dict[str, list[str]] = {o: [] for o in ORGANS}
    for o in ORGANS:
        if o in case.leukostasis_grades:
            organ[o] = int(case.leukostasis_grades[o])
            basis[o].append(f"clinician grade {organ[o]}")
            continue
        if symptoms is None:
            organ[o] = None
            continue
        g = 0
        for s in placed:
            if s.organ == o:
                g = max(g, int(s.grade))
                basis[o].append(f"{s.label}: grade {s.grade} ({s.grade_basis})")
        organ[o] = g

    if symptoms is None and not case.leukostasis_grades:
        gaps.need("symptoms")
        gaps.cannot("Leukostasis grade: symptoms not recorded (record them, or record that there are none)")
    if closest:
        notes.append("Placed by the closest row of the grading table (the table does not name them; status U): "
                     + ", ".join(kb.symptoms[t].label.lower() for t in closest)
                     + ". Set leukostasis_grades for the organ if the clinical picture differs.")
    if ungraded:
        notes.append("Recorded but not graded (no plausible link to leukostasis): "
                     + ", ".join(kb.symptoms[t].label.lower() for t in ungraded) + ".")

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
        # an organ with neither symptoms recorded nor a clinician's grade: not recorded (None), not "none"
        "organ_basis": {o: (b if organ[o] is not None else None) for o, b in basis.items()},
        "aggregation": param_working(rule_p),
        "applies": param_working(scope_p),
        "hyperleukocytosis_present": hl.present,
        "symptoms": list(symptoms) if symptoms is not None else None,
        "placements": None if symptoms is None else {
            s.term: {"organ": s.organ, "grade": s.grade, "placement": s.placement, "status": s.status,
                     "basis": s.grade_basis} for s in placed},
        "ungraded_symptoms": None if symptoms is None else ungraded,
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
