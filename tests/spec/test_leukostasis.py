"""Spec table: leukostasis grade after Novotny 2005 (clinical.md §2; candidate table status U)."""

from __future__ import annotations

import pytest

from leukos.knowledge import load_knowledge
from leukos.rules import assess
from leukos.rules.leukostasis import aggregate
from tests.conftest import make_case

# wbc, symptoms, overrides, findings, expected grade, expected organ grades, source
ROWS = [
    (250, [], {}, {}, 0, {"pulmonary": 0, "neurological": 0, "other": 0}, "no symptoms: grade 0 (not probable)"),
    (250, ["dyspnea_exertion"], {}, {}, 1, {"pulmonary": 1}, "table: dyspnoea on exertion = pulmonary 1"),
    (250, ["oxygen_requirement"], {}, {}, 2, {"pulmonary": 2}, "table: O2 need = pulmonary 2"),
    (250, ["dyspnea_rest"], {}, {}, 3, {"pulmonary": 3}, "table: dyspnoea at rest = pulmonary 3"),
    (250, ["headache", "tinnitus"], {}, {}, 1, {"neurological": 1}, "table: slight tinnitus/headache = neuro 1"),
    (250, ["blurred_vision"], {}, {}, 2, {"neurological": 2}, "table: slight visual disturbance = neuro 2"),
    (250, ["confusion"], {}, {}, 3, {"neurological": 3}, "table: confusion = neuro 3"),
    (250, ["priapism"], {}, {}, 3, {"other": 3}, "table: severe local (priapism) = 3"),
    (250, ["headache", "dyspnea_rest"], {}, {}, 3, {"pulmonary": 3, "neurological": 1}, "aggregation = max organ grade (U)"),
    (250, ["headache"], {"neurological": 2}, {}, 2, {"neurological": 2}, "case-format.md: clinician override wins"),
    (250, ["stroke"], {}, {}, 3, {"neurological": 3}, "stroke: closest row = severe neurological (as intracranial bleeding)"),
    (250, ["fever", "fatigue"], {}, {}, 0, {"pulmonary": 0, "neurological": 0, "other": 0},
     "general symptoms have no leukostasis row: grade 0, listed as ungraded"),
    (80, ["dyspnea_rest"], {}, {}, 0, {"pulmonary": 3}, "no hyperleukocytosis: not applicable (grade 0)"),
    (80, ["dyspnea_rest"], {}, {"known_diagnosis": "AML", "immunophenotype": "monocytic"}, 3, {"pulmonary": 3},
     "monocytic AML symptomatic above 50 (Röllig 2015)"),
    (250, None, {}, {}, None, {"pulmonary": None}, "symptoms not recorded: not graded, reported missing"),
]


@pytest.mark.parametrize("wbc,symptoms,overrides,findings,grade,organs,source", ROWS)
def test_leukostasis_table(wbc, symptoms, overrides, findings, grade, organs, source):
    a = assess(make_case({"wbc": wbc}, symptoms, leukostasis_grades=overrides, findings=findings))
    ls = a.leukostasis
    assert ls.grade == grade, source
    for organ, g in organs.items():
        assert ls.organ_grades[organ] == g, source
    assert ls.unverified is True
    if symptoms is None:
        assert "symptoms" in a.missing_data
    if grade is not None:
        assert ls.label == {0: "not probable", 1: "possible", 2: "probable", 3: "highly probable"}[grade]


# Every term of the vocabulary: (organ, grade, placement). Expected from the candidate grading table
# (clinical.md §2, status U): 'table' rows are named by it (pulmonary: exertion 1, O2 need 2, rest /
# ventilation 3; neurological: slight tinnitus/headache/dizziness 1, slight visual disturbance 2,
# confusion/delirium/somnolence/intracranial bleeding 3; local/other: MI, priapism, limb ischaemia 3);
# 'closest_row' terms are placed by the nearest descriptor (issue 9: stroke, TIA, focal deficit, coma,
# seizure, papilloedema, retinal haemorrhage, AKI, bowel ischaemia must not read 0); 'ungraded' terms
# have no plausible link and are listed.
VOCABULARY = {
    "dyspnea_exertion": ("pulmonary", 1, "table"),
    "dyspnea_rest": ("pulmonary", 3, "table"),
    "hypoxemia": ("pulmonary", 2, "table"),
    "oxygen_requirement": ("pulmonary", 2, "table"),
    "mechanical_ventilation": ("pulmonary", 3, "table"),
    "respiratory_failure": ("pulmonary", 3, "table"),
    "pulmonary_infiltrates": ("pulmonary", 1, "closest_row"),
    "hemoptysis": ("pulmonary", 2, "closest_row"),
    "cough": ("pulmonary", None, "ungraded"),
    "headache": ("neurological", 1, "table"),
    "dizziness": ("neurological", 1, "table"),
    "tinnitus": ("neurological", 1, "table"),
    "visual_disturbance": ("neurological", 2, "table"),
    "blurred_vision": ("neurological", 2, "table"),
    "confusion": ("neurological", 3, "table"),
    "somnolence": ("neurological", 3, "table"),
    "delirium": ("neurological", 3, "table"),
    "intracranial_hemorrhage": ("neurological", 3, "table"),
    "papilledema": ("neurological", 2, "closest_row"),
    "retinal_hemorrhage": ("neurological", 2, "closest_row"),
    "gait_instability": ("neurological", 2, "closest_row"),
    "hearing_loss": ("neurological", 2, "closest_row"),
    "tia": ("neurological", 2, "closest_row"),
    "coma": ("neurological", 3, "closest_row"),
    "seizure": ("neurological", 3, "closest_row"),
    "focal_deficit": ("neurological", 3, "closest_row"),
    "stroke": ("neurological", 3, "closest_row"),
    "myocardial_ischemia": ("other", 3, "table"),
    "priapism": ("other", 3, "table"),
    "limb_ischemia": ("other", 3, "table"),
    "chest_pain": ("other", 1, "closest_row"),
    "arrhythmia": ("other", 1, "closest_row"),
    "acute_kidney_injury": ("other", 2, "closest_row"),
    "bowel_ischemia": ("other", 3, "closest_row"),
    "fever": ("general", None, "ungraded"),
    "fatigue": ("general", None, "ungraded"),
    "bleeding": ("general", None, "ungraded"),
    "weight_loss": ("general", None, "ungraded"),
    "bone_pain": ("general", None, "ungraded"),
}


def test_the_table_covers_the_whole_vocabulary():
    assert set(VOCABULARY) == set(load_knowledge().symptoms)


@pytest.mark.parametrize("term", sorted(VOCABULARY))
def test_every_symptom_is_placed_or_listed(term):
    organ, grade, placement = VOCABULARY[term]
    a = assess(make_case({"wbc": 250}, [term]))
    ls = a.leukostasis
    w = ls.working
    if grade is None:
        assert ls.grade == 0
        assert term in w["ungraded_symptoms"]
        assert any("not graded" in n and load_knowledge().symptoms[term].label.lower() in n for n in ls.notes)
    else:
        assert ls.organ_grades[organ] == grade
        assert ls.grade == grade
        p = w["placements"][term]
        assert (p["organ"], p["grade"], p["placement"], p["status"]) == (organ, grade, placement, "U")
        assert p["basis"]
        if placement == "closest_row":
            assert any("closest row" in n for n in ls.notes)
            assert "leukos_operational" in ls.citations


@pytest.mark.parametrize("term", ["stroke", "coma", "focal_deficit", "seizure", "intracranial_hemorrhage"])
def test_stroke_or_coma_above_100_is_never_asymptomatic(term):
    """Issue 9: a stroke or coma at WBC > 100 is symptomatic hyperleukocytosis, whatever the rest."""
    a = assess(make_case({"wbc": 150}, [term]))
    assert a.leukostasis.grade == 3
    assert a.urgency == "emergent"
    texts = [a.headline, *a.leukostasis.notes, *a.leukapheresis.notes, *(r.text for r in a.recommendations)]
    assert not any("asymptomatic" in x.lower() for x in texts), texts


@pytest.mark.parametrize("grades,rule,expected", [
    ({"pulmonary": 3, "neurological": 0, "other": 0}, "max", 3),
    ({"pulmonary": 3, "neurological": 0, "other": 0}, "max_multi_organ_for_3", 2),
    ({"pulmonary": 3, "neurological": 2, "other": 0}, "max_multi_organ_for_3", 3),
    ({"pulmonary": 1, "neurological": 2, "other": 0}, "max", 2),
])
def test_aggregation_rules(grades, rule, expected):
    """clinical.md §2: aggregation unverified (max vs multi-organ) -> configurable."""
    assert aggregate(grades, rule) == expected


def test_aggregation_is_a_setting():
    kb = load_knowledge({"leukostasis.aggregation": "max_multi_organ_for_3"})
    assert assess(make_case({"wbc": 250}, ["dyspnea_rest"]), kb).leukostasis.grade == 2
