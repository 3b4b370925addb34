"""The knowledge base is data with provenance: every parameter cites a registered source, has a
unit and a V/P/U status; overrides are validated."""

from __future__ import annotations

import pytest

from leukos.errors import LeukosUserError
from leukos.interop.schema import build_case_schema, shipped_case_schema
from leukos.knowledge import load_knowledge


def test_every_parameter_has_unit_status_and_registered_citations(kb):
    for key, p in kb.parameters.items():
        assert p.unit, key
        assert p.status in ("V", "P", "U"), key
        assert p.citations, key
        for c in p.citations:
            assert c in kb.citations, (key, c)


def test_every_message_citation_is_registered(kb):
    for code, m in kb.table("artefacts")["messages"].items():
        for c in m["citations"]:
            assert c in kb.citations, (code, c)
    for c in kb.table("tumour_lysis")["prophylaxis"]["prophylaxis_citations"]:
        assert c in kb.citations


def test_choice_parameters_default_to_a_choice(kb):
    for key, p in kb.parameters.items():
        if p.choices:
            assert p.value in p.choices, key


def test_citations_resolve_to_authors_venue_year(kb):
    for key, c in kb.citations.items():
        assert (c.authors or "authors" in c.unverified) and c.venue and c.year > 1900, key


def test_symptom_grades_are_0_to_3_and_organs_known(kb):
    for term, s in kb.symptoms.items():
        assert s.organ in ("pulmonary", "neurological", "other", "general"), term
        assert s.grade is None or 1 <= s.grade <= 3, term
        assert s.grade_basis, term


def test_shipped_schema_is_generated_from_the_knowledge_base(kb):
    # Regenerate with: python -m leukos.interop.schema
    assert shipped_case_schema() == build_case_schema(kb)


def test_overrides_make_a_new_knowledge_base_and_are_validated():
    kb = load_knowledge({"hyperleukocytosis.wbc_threshold": 50})
    assert kb.value("hyperleukocytosis.wbc_threshold") == 50
    assert kb.param("hyperleukocytosis.wbc_threshold").overridden_from == 100
    assert load_knowledge().value("hyperleukocytosis.wbc_threshold") == 100
    with pytest.raises(LeukosUserError, match="one of"):
        load_knowledge({"hyperleukocytosis.wbc_threshold": 75})
    with pytest.raises(LeukosUserError, match="hyperleukocytosis.wbc_threshold"):
        load_knowledge({"hyperleukocytosis.wbc_treshold": 50})
    with pytest.raises(LeukosUserError, match="number"):
        load_knowledge({"tumour_lysis.potassium_min": "six"})
    for bad in (float("nan"), float("inf"), float("-inf")):  # would compare false with every result
        with pytest.raises(LeukosUserError, match="a finite number"):
            load_knowledge({"tumour_lysis.uric_acid_min": bad})


def test_a_title_ending_in_a_question_mark_gets_no_extra_full_stop():
    from leukos.knowledge.base import end_sentence

    assert end_sentence("What is new in acute myeloid leukemia classification?").endswith("classification?")
    assert end_sentence("Leukostasis") == "Leukostasis."
    assert end_sentence("Already done. ") == "Already done."
