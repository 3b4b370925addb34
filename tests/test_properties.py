"""Invariants (STYLE.md §9): more white cells or blasts never lowers the leukostasis grade nor
turns hyperleukocytosis off; missing data never reads as normal; assess never crashes on a
valid case."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from leukos.knowledge import load_knowledge
from leukos.rules import assess
from tests.conftest import make_case

KB = load_knowledge()
SYMPTOMS = sorted(KB.symptoms)
PHENOTYPES = [None, "myeloid", "monocytic", "b_lymphoblastic", "mature_b"]
DIAGNOSES = [None, "AML", "ALL", "CLL", "CML_CP"]

wbc = st.floats(min_value=0, max_value=1500, allow_nan=False)
pct = st.floats(min_value=0, max_value=100, allow_nan=False)


@st.composite
def scenario(draw):
    return {
        "wbc": draw(wbc),
        "blasts_pct": draw(st.none() | pct),
        "symptoms": draw(st.none() | st.lists(st.sampled_from(SYMPTOMS), max_size=5)),
        "overrides": draw(st.dictionaries(st.sampled_from(["pulmonary", "neurological", "other"]),
                                          st.integers(0, 3), max_size=2)),
        "findings": {k: v for k, v in {
            "immunophenotype": draw(st.sampled_from(PHENOTYPES)),
            "known_diagnosis": draw(st.sampled_from(DIAGNOSES)),
        }.items() if v},
    }


def _assess(s, wbc_value, blasts):
    labs = {"wbc": wbc_value}
    if blasts is not None:
        labs["blasts_pct"] = blasts
    return assess(make_case(labs, s["symptoms"], leukostasis_grades=s["overrides"], findings=s["findings"]))


@settings(max_examples=300, deadline=None)
@given(s=scenario(), more_wbc=st.floats(min_value=0, max_value=500, allow_nan=False),
       more_blasts=st.floats(min_value=0, max_value=100, allow_nan=False))
def test_raising_wbc_or_blasts_never_lowers_grade_or_turns_hyperleukocytosis_off(s, more_wbc, more_blasts):
    before = _assess(s, s["wbc"], s["blasts_pct"])
    blasts_after = None if s["blasts_pct"] is None else min(100.0, s["blasts_pct"] + more_blasts)
    after = _assess(s, min(2000.0, s["wbc"] + more_wbc), blasts_after)
    if before.hyperleukocytosis.present:
        assert after.hyperleukocytosis.present
    g0, g1 = before.leukostasis.grade, after.leukostasis.grade
    if g0 is not None and g1 is not None:
        assert g1 >= g0
    if g0 is not None and g1 is None:
        # a higher count can make the grade applicable but unknown: never silently 0
        assert "symptoms" in after.missing_data and after.leukostasis.applicable is not False
    if before.leukapheresis.apl_suspected:
        assert after.leukapheresis.indicated is not True


@settings(max_examples=200, deadline=None)
@given(s=scenario())
def test_leukapheresis_never_indicated_with_apl(s):
    for apl in ({"known_diagnosis": "APL"}, {"genetics": {"pml_rara": "positive"}}, {"immunophenotype": "promyelocytic"}):
        a = assess(make_case({"wbc": s["wbc"]}, s["symptoms"], leukostasis_grades=s["overrides"], findings=apl))
        assert a.leukapheresis.indicated is not True
        assert "CONSIDER_LEUKAPHERESIS" not in {r.code for r in a.recommendations}


@settings(max_examples=150, deadline=None)
@given(labs=st.dictionaries(st.sampled_from(["uric_acid", "potassium", "phosphate", "calcium"]),
                            st.floats(min_value=0.6, max_value=6, allow_nan=False), max_size=4))
def test_tls_is_never_false_while_a_missing_lab_could_make_it_true(labs):
    a = assess(make_case({"wbc": 150, **labs}, []))
    if a.tls.laboratory is False:
        assert len(a.tls.criteria_met) + len(a.tls.criteria_not_assessed) < 2
    if len(labs) < 4 and a.tls.laboratory is None:
        assert a.tls.criteria_not_assessed


@settings(max_examples=150, deadline=None)
@given(s=scenario())
def test_every_output_cites_registered_sources_and_serialises(s):
    import json

    a = _assess(s, s["wbc"], s["blasts_pct"])
    d = a.to_dict()
    json.dumps(d)
    for part in ("hyperleukocytosis", "leukostasis", "tls", "dic", "leukapheresis"):
        for key in d[part]["citations"]:
            assert key in d["references"]
    assert d["ruleset_version"] == KB.ruleset_version
