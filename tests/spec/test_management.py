"""Spec table: the APL gate, the leukapheresis indication and the urgency (clinical.md §3)."""

from __future__ import annotations

import pytest

from leukos.knowledge import load_knowledge
from leukos.rules import assess
from tests.conftest import make_case

COAG = {"fibrinogen": 0.8, "inr": 1.8, "platelets": 20}

# labs, symptoms, findings, indicated, asfa, apl_suspected, source
ROWS = [
    ({"wbc": 250}, ["dyspnea_rest"], {"known_diagnosis": "AML", "genetics": {"pml_rara": "negative"}}, True, "II", False,
     "symptomatic leukostasis: ASFA 2023 category II (U)"),
    ({"wbc": 250}, [], {"known_diagnosis": "AML"}, False, "III", False, "asymptomatic: prophylaxis category III"),
    ({"wbc": 250}, ["dyspnea_rest"], {"known_diagnosis": "APL"}, False, None, True, "known APL: avoid (Sanz 2009 rec 1.8)"),
    ({"wbc": 250}, ["dyspnea_rest"], {"genetics": {"pml_rara": "positive"}}, False, None, True, "PML::RARA positive"),
    ({"wbc": 250}, ["dyspnea_rest"], {"immunophenotype": "promyelocytic"}, False, None, True, "promyelocytic phenotype"),
    ({"wbc": 250, **COAG}, ["dyspnea_rest"], {"smear": {"abnormal_promyelocytes": True}}, False, None, True,
     "promyelocyte-rich smear with coagulopathy"),
    ({"wbc": 250, "blasts_pct": 60, **COAG}, ["dyspnea_rest"], {"known_diagnosis": "AML"}, False, None, True,
     "AML + coagulopathy, PML::RARA unknown: APL not excluded (safety-first setting)"),
    ({"wbc": 250, "blasts_pct": 60, **COAG}, ["dyspnea_rest"],
     {"known_diagnosis": "AML", "immunophenotype": "monocytic", "genetics": {"pml_rara": "unknown"}}, True, "II", False,
     "monocytic phenotype known: APL not suspected"),
    ({"wbc": 80}, ["dyspnea_rest"], {}, False, None, False, "no hyperleukocytosis"),
    ({"wbc": 250}, None, {}, None, None, False, "symptoms not recorded: not decided"),
    ({}, [], {}, None, None, False, "no WBC: not decided"),
]


@pytest.mark.parametrize("labs,symptoms,findings,indicated,asfa,apl,source", ROWS)
def test_leukapheresis_table(labs, symptoms, findings, indicated, asfa, apl, source):
    a = assess(make_case(labs, symptoms, findings=findings))
    lk = a.leukapheresis
    assert lk.indicated is indicated, source
    assert lk.asfa_category == asfa, source
    assert lk.apl_suspected is apl, source
    codes = {r.code for r in a.recommendations}
    if apl:
        assert lk.contraindications and "START_ATRA" in codes and "NO_LEUKAPHERESIS_APL" in codes
        assert "CONSIDER_LEUKAPHERESIS" not in codes
        assert a.urgency == "emergent"


def test_asfa_edition_is_a_setting():
    kb = load_knowledge({"management.asfa_edition": "2016"})
    a = assess(make_case({"wbc": 250}, ["dyspnea_rest"], findings={"genetics": {"pml_rara": "negative"}}), kb)
    assert a.leukapheresis.asfa_category == "I"


def test_warn_mode_of_the_apl_gate():
    kb = load_knowledge({"management.apl_gate_unresolved_coagulopathy": "warn"})
    a = assess(make_case({"wbc": 250, "blasts_pct": 60, **COAG}, ["dyspnea_rest"], findings={"known_diagnosis": "AML"}), kb)
    assert a.leukapheresis.indicated is True and any("PML::RARA" in w for w in a.warnings)


# labs, symptoms, findings, urgency, source
URGENCY = [
    ({"wbc": 250}, ["dyspnea_rest"], {"genetics": {"pml_rara": "negative"}}, "emergent", "symptomatic leukostasis"),
    ({"wbc": 250}, [], {}, "urgent", "asymptomatic hyperleukocytosis"),
    ({"wbc": 8}, [], {}, "routine", "normal count"),
    ({"wbc": 20}, [], {"known_diagnosis": "APL"}, "emergent", "APL at any count (Sanz 2019)"),
]


@pytest.mark.parametrize("labs,symptoms,findings,urgency,source", URGENCY)
def test_urgency(labs, symptoms, findings, urgency, source):
    assert assess(make_case(labs, symptoms, findings=findings)).urgency == urgency, source


def test_recommendations_carry_citations_and_unverified_flags():
    a = assess(make_case({"wbc": 250, "platelets": 20}, ["dyspnea_rest"], findings={"known_diagnosis": "AML"}))
    by = {r.code: r for r in a.recommendations}
    assert by["START_CYTOREDUCTION"].citations
    assert by["PLATELET_SUPPORT"].unverified is True  # Röllig 2015 body not readable: U
    assert by["DEFER_RBC_TRANSFUSION"].priority == 2
