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
    (250, ["stroke"], {}, {}, 0, {"neurological": 0}, "stroke not in the table: not graded by itself, warned"),
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


def test_ungraded_symptom_is_warned():
    a = assess(make_case({"wbc": 250}, ["stroke"]))
    assert any("stroke" in w for w in a.warnings)


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
