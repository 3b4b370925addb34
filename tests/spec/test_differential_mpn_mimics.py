"""Spec tables for issue 9 item 1: real criteria for the MPN mimics (CMML, atypical CML, CNL, PMF).

Each row names the source of its expectation:
- CMML: Khoury 2022 (WHO 5th edition) Table 6; Arber 2022 (ICC) CMML table.
- aCML: WHO 2022 "MDS/MPN with neutrophilia" and ICC 2022 aCML (dysgranulopoiesis, precursors >= 10 %,
  monocytes < 10 %, basophils < 2 %, no BCR::ABL1; SETBP1 with ASXL1 and no MPN driver support it).
- CNL: WHO 2016 / ICC 2022 (clinical.md §7d: no or no significant dysgranulopoiesis; PV/ET/PMF excluded).
- PMF: ICC 2022 overt PMF (driver mutation, fibrosis grade 2-3, a minor criterion such as
  leukoerythroblastosis).
The points are software choices; the tests assert the orderings, likelihood gates and derived
values the criteria imply.
"""

from __future__ import annotations

import pytest

from leukos.interop.case_format import case_from_dict
from leukos.knowledge import load_knowledge
from leukos.rules.differential import case_features, differential

KB = load_knowledge()
ICC = load_knowledge({"differential.cnl_criteria": "ICC2022"})
WHO16 = load_knowledge({"differential.cnl_criteria": "WHO2016"})


def case(labs, **findings):
    return case_from_dict({"patient": {"age_years": 72}, "labs": labs, "findings": findings})


def entry(c, code, kb=KB):
    return next((e for e in differential(c, kb) if e.code == code), None)


def codes(c, kb=KB):
    return [e.code for e in differential(c, kb)]


# --- derived counts: one place, both directions ------------------------------------------------

DERIVED = [
    # labs, feature, expected, why
    ({"wbc": 85.1, "monocytes_abs": 19.57}, "monocytosis", True,
     "19.57 / 85.1 = 23 % >= 10 % and 19.57 >= 0.5 x10^9/L (WHO 2022 / ICC 2022)"),
    ({"wbc": 85, "monocytes_abs": 3}, "monocytosis", False, "3 / 85 = 3.5 % < 10 % although 3 >= 0.5"),
    ({"wbc": 4, "monocytes_pct": 12}, "monocytosis", False, "4 x 12 % = 0.48 x10^9/L < 0.5"),
    ({"wbc": 40, "monocytes_abs": "1.2 K/uL"}, "monocytosis", False, "1.2 / 40 = 3 % < 10 % (unit converted)"),
    ({"monocytes_abs": 19.57}, "monocytosis", None, "no WBC: the percentage cannot be derived, unknown"),
    ({"wbc": 42, "basophils_abs": 1.7, "neutrophils_pct": 68, "myelocytes_pct": 10, "monocytes_pct": 2,
      "blasts_pct": 1}, "acml_blood_picture", False, "basophils 1.7 / 42 = 4 % >= 2 %: not the aCML picture"),
    ({"wbc": 42, "basophils_abs": 0.4, "neutrophils_pct": 68, "myelocytes_pct": 10, "monocytes_pct": 2,
      "blasts_pct": 1}, "acml_blood_picture", True, "basophils 0.4 / 42 = 0.95 % < 2 %"),
    ({"wbc": 100, "neutrophils_abs": 85}, "neutrophils_bands_cnl", True,
     "ANC 85 / 100 = 85 % >= 80 % (with or without the bands)"),
    ({"wbc": 100, "neutrophils_abs": 70, "bands_pct": 15}, "neutrophils_bands_cnl", None,
     "ANC may already include the bands: 70-85 % straddles 80 %, unknown"),
]


@pytest.mark.parametrize("labs,feature,expected,why", DERIVED, ids=[r[3][:40] for r in DERIVED])
def test_absolute_and_relative_counts_are_derived_from_each_other(labs, feature, expected, why):
    assert case_features(case(labs), KB)[feature] is expected, why


def test_the_derivation_is_shown_in_the_entry():
    e = entry(case({"wbc": 85.1, "monocytes_abs": 19.57, "blasts_pct": 7}), "CMML")
    text = " ".join(e.supporting)
    assert "derived" in text and "19.6" in text and "85.1" in text and "23 %" in text


def test_a_given_percentage_wins_over_the_derived_one():
    c = case({"wbc": 50, "monocytes_abs": 10, "monocytes_pct": 8})  # 10/50 would be 20 %
    assert case_features(c, KB)["monocytosis"] is False


# --- CMML -------------------------------------------------------------------------------------

CMML_BLOOD = {"wbc": 85.1, "monocytes_abs": 19.57, "blasts_pct": 7, "hemoglobin": 8.6, "platelets": 79}


def test_cmml_from_an_absolute_monocyte_count_ranks_first():
    """WHO 2022 Table 6 prerequisite 1 read from the absolute count (a case reported as 'monocytes 19.57 K/uL')."""
    c = case(CMML_BLOOD, genetics={"bcr_abl1": "negative"}, marrow={"blasts_pct": 8})
    assert codes(c)[0] == "CMML"


SUPPORT = [
    # monocytes abs (WBC 10 or 40), findings, cmml_supporting, why
    (19.57, {}, None, "no supporting criterion in the case: unknown, never False"),
    (19.57, {"smear": {"dysgranulopoiesis": True}}, True, ">= 1 x10^9/L: dysplasia alone suffices"),
    (19.57, {"genetics": {"asxl1": "positive"}}, True, ">= 1 x10^9/L: a clonal abnormality alone suffices"),
    (0.8, {"smear": {"dysgranulopoiesis": True}}, None, "0.5-1 x10^9/L: dysplasia without clonality is not enough"),
    (0.8, {"smear": {"dysgranulopoiesis": True}, "genetics": {"setbp1": "positive"}}, True,
     "0.5-1 x10^9/L: dysplasia and clonality"),
]


@pytest.mark.parametrize("mono,findings,expected,why", SUPPORT, ids=[r[3][:40] for r in SUPPORT])
def test_cmml_supporting_criteria_follow_the_monocyte_count(mono, findings, expected, why):
    wbc = 85.1 if mono > 1 else 6.0
    assert case_features(case({"wbc": wbc, "monocytes_abs": mono}, **findings), KB)["cmml_supporting"] is expected, why


def test_cmml_is_high_only_with_a_supporting_criterion():
    base = {"genetics": {"bcr_abl1": "negative"}, "marrow": {"blasts_pct": 8}}
    without = entry(case(CMML_BLOOD, **base), "CMML")
    assert without.likelihood == "moderate"
    with_dysplasia = entry(case(CMML_BLOOD, smear={"dysgranulopoiesis": True}, **base), "CMML")
    assert with_dysplasia.likelihood == "high"


def test_an_mpn_driver_mutation_argues_against_cmml():
    """WHO: JAK2, CALR or MPL mutations favour an MPN with monocytosis over CMML."""
    base = {"genetics": {"bcr_abl1": "negative"}}
    plain = entry(case(CMML_BLOOD, **base), "CMML")
    jak2 = entry(case(CMML_BLOOD, genetics={"bcr_abl1": "negative", "jak2": "positive"}), "CMML")
    assert jak2.score < plain.score


# --- aCML vs CNL -------------------------------------------------------------------------------

ACML_BLOOD = {"wbc": 42, "neutrophils_pct": 68, "bands_pct": 4, "metamyelocytes_pct": 5, "myelocytes_pct": 5,
              "blasts_pct": 2, "monocytes_pct": 2, "basophils_pct": 0, "platelets": 533}


def test_acml_is_high_with_dysgranulopoiesis_and_not_without():
    """ICC 2022 / WHO 2022: dysgranulopoiesis is part of the definition of aCML."""
    no = entry(case(ACML_BLOOD, genetics={"bcr_abl1": "negative"}), "OTHER_MPN")
    yes = entry(case(ACML_BLOOD, genetics={"bcr_abl1": "negative"}, smear={"dysgranulopoiesis": True}), "OTHER_MPN")
    assert no.likelihood != "high" and yes.likelihood == "high"
    assert codes(case(ACML_BLOOD, genetics={"bcr_abl1": "negative"}, smear={"dysgranulopoiesis": True}))[0] == "OTHER_MPN"


def test_setbp1_with_asxl1_supports_acml():
    base = {"bcr_abl1": "negative", "jak2": "negative", "calr": "negative", "mpl": "negative"}
    plain = entry(case(ACML_BLOOD, genetics={"bcr_abl1": "negative"}), "OTHER_MPN")
    mutated = entry(case(ACML_BLOOD, genetics={**base, "setbp1": "positive", "asxl1": "positive"}), "OTHER_MPN")
    assert mutated.score > plain.score


CSF3R_BLOOD = {"wbc": 30, "platelets": 695, "blasts_pct": 1.5, "hemoglobin": 10}


@pytest.mark.parametrize("kb", [ICC, WHO16], ids=["ICC2022", "WHO2016"])
def test_csf3r_with_dysgranulopoiesis_is_acml_not_cnl(kb):
    """CNL has no (WHO 2016) / no significant (ICC 2022) dysgranulopoiesis; a CSF3R-mutated
    neutrophilia with dysgranulopoiesis is atypical CML (clinical.md §7d; WHO 2016 aCML footnote)."""
    g = {"bcr_abl1": "negative", "csf3r": "positive"}
    dysplastic = case(CSF3R_BLOOD, genetics=g, smear={"dysgranulopoiesis": True})
    order = codes(dysplastic, kb)
    assert order.index("OTHER_MPN") < order.index("CNL")
    assert entry(dysplastic, "CNL", kb).likelihood == "low"
    # without the dysplasia the same blood keeps CNL ahead
    plain = codes(case(CSF3R_BLOOD, genetics=g), kb)
    assert plain.index("CNL") < plain.index("OTHER_MPN") if "OTHER_MPN" in plain else plain[0] == "CNL"


def test_cnl_names_dysgranulopoiesis_as_what_would_change_it():
    cnl = {"wbc": 40, "neutrophils_pct": 85, "bands_pct": 5, "promyelocytes_pct": 0, "myelocytes_pct": 2,
           "metamyelocytes_pct": 2, "blasts_pct": 0, "monocytes_pct": 2}
    e = entry(case(cnl, genetics={"bcr_abl1": "negative", "csf3r": "positive"}), "CNL", ICC)
    assert e.likelihood == "high"
    assert any("dysgranulopoiesis" in w for w in e.would_change)
    no_dys = entry(case(cnl, genetics={"bcr_abl1": "negative", "csf3r": "positive"},
                        smear={"dysgranulopoiesis": False}), "CNL", ICC)
    assert no_dys.likelihood == "high" and no_dys.score > e.score


def test_an_mpn_driver_mutation_argues_against_cnl():
    cnl = {"wbc": 40, "neutrophils_pct": 85, "bands_pct": 5, "myelocytes_pct": 2, "metamyelocytes_pct": 2}
    plain = entry(case(cnl, genetics={"bcr_abl1": "negative", "csf3r": "positive"}), "CNL")
    jak2 = entry(case(cnl, genetics={"bcr_abl1": "negative", "csf3r": "positive", "jak2": "positive"}), "CNL")
    assert jak2.score < plain.score


# --- PMF ------------------------------------------------------------------------------------------

PMF_BLOOD = {"wbc": 19.3, "neutrophils_abs": 13.2, "hemoglobin": 9.7, "platelets": 64}


def test_pmf_with_driver_fibrosis_and_leukoerythroblastosis_ranks_first_and_high():
    """ICC 2022 overt PMF: JAK2 V617F, reticulin fibrosis grade 2, leukoerythroblastosis (minor criterion)."""
    c = case(PMF_BLOOD, genetics={"jak2": "positive"}, marrow={"fibrosis_grade": 2},
             smear={"teardrop_cells": True, "leukoerythroblastosis": True})
    d = differential(c, KB)
    assert d[0].code == "OTHER_MPN" and d[0].likelihood == "high"


@pytest.mark.parametrize("marrow,smear,why", [
    ({"fibrosis_grade": 1}, {"leukoerythroblastosis": True}, "fibrosis grade 1: prefibrotic at most, not overt"),
    ({}, {"leukoerythroblastosis": True}, "no marrow: fibrosis unknown"),
])
def test_pmf_is_not_high_without_overt_fibrosis(marrow, smear, why):
    c = case(PMF_BLOOD, genetics={"jak2": "positive"}, marrow=marrow, smear=smear)
    e = entry(c, "OTHER_MPN")
    assert e is not None and e.likelihood != "high", why


def test_pmf_without_driver_is_not_led_by_the_blood_picture_alone():
    """Leukoerythroblastosis and tear-drop cells support myelofibrosis but do not define it."""
    c = case(PMF_BLOOD, smear={"teardrop_cells": True, "leukoerythroblastosis": True})
    e = entry(c, "OTHER_MPN")
    assert e is not None and e.likelihood != "high"
