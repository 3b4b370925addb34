"""A fact built from other facts (aCML criteria from the aCML blood picture, 'no other reactive
cause' from 'reactive cause present', ...) reads them once per call: the values the ranking uses are
those of each fact worked out on its own, and the composition is the three-valued logic it names."""

from __future__ import annotations

import dataclasses

import pytest

from leukos.domain.case import GeneticResult
from leukos.interop.case_format import case_from_dict
from leukos.knowledge import load_knowledge
from leukos.rules._common import all3, any3
from leukos.rules.differential.facts import FACTS, fact_value
from leukos.rules.differential.features import Features, checked_rules
from tests.test_assess_golden import cases, load

KB = load_knowledge()


def _all_cases():
    return [load(kind, data, KB) for _, kind, data in cases()]


def test_every_fact_in_one_call_equals_the_fact_worked_out_on_its_own():
    rules = checked_rules(KB)
    for case in _all_cases():
        feats = Features(dataclasses.replace(case), KB, rules)
        for name in FACTS:
            assert feats.fact(name) == fact_value(dataclasses.replace(case), KB, name), (case.id, name)


@pytest.mark.parametrize("bcr", ["negative", "positive", None])
@pytest.mark.parametrize("infection", [True, False, None])
def test_composed_facts_are_the_three_valued_logic_of_their_parts(bcr, infection):
    findings = {"infection": {"present": infection}, "drugs": [] if infection is not None else None}
    if bcr is not None:
        findings["genetics"] = {"bcr_abl1": bcr}
    case = case_from_dict({"labs": {"wbc": 120, "myelocytes_pct": 14, "monocytes_pct": 3, "basophils_pct": 1,
                                    "blasts_pct": 2}, "symptoms": [], "findings": findings})
    f = Features(case, KB, checked_rules(KB))
    assert f.fact("acml_criteria") == all3([f.fact("acml_blood_picture"),
                                            case.findings.gene("bcr_abl1") is GeneticResult.NEGATIVE
                                            if bcr is not None else None])
    raised = f.fact("reactive_cause_present")
    assert f.fact("no_other_reactive_cause") == (None if raised is None else not raised)
    every = any3([raised, case.findings.solid_tumor.present])
    assert f.fact("no_reactive_cause") == (None if every is None else not every)
