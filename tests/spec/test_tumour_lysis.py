"""Spec table: tumour lysis (clinical.md §5: Cairo-Bishop 2004, Howard 2011, Cairo 2010 risk)."""

from __future__ import annotations

import pytest

from leukos.knowledge import load_knowledge
from leukos.rules import assess
from tests.conftest import make_case

NORMAL = {"uric_acid": 300, "potassium": 4.0, "phosphate": 1.0, "calcium": 2.3}

# labs (over NORMAL), age, expected laboratory TLS, criteria met, source
LAB_ROWS = [
    ({}, 50, False, [], "no criterion met"),
    ({"uric_acid": 476, "potassium": 6.0}, 50, True, ["uric_acid", "potassium"], "Cairo-Bishop: >= 476 umol/L and >= 6.0 mmol/L (inclusive)"),
    ({"uric_acid": {"value": 8, "unit": "mg/dL"}, "phosphate": {"value": 4.5, "unit": "mg/dL"}}, 50, True,
     ["uric_acid", "phosphate"], "Cairo-Bishop: 8 mg/dL and 4.5 mg/dL (adult)"),
    ({"uric_acid": 475, "potassium": 5.9}, 50, False, [], "just below both thresholds"),
    ({"calcium": 1.75, "potassium": 6.5}, 50, True, ["potassium", "calcium"], "calcium <= 1.75 mmol/L (7 mg/dL)"),
    ({"phosphate": 1.6, "uric_acid": 500}, 10, False, ["uric_acid"], "child phosphate threshold 2.1 mmol/L (6.5 mg/dL)"),
    ({"phosphate": 2.2, "uric_acid": 500}, 10, True, ["uric_acid", "phosphate"], "child phosphate >= 2.1"),
    ({"uric_acid": 500}, 50, False, ["uric_acid"], "one criterion is not laboratory TLS (>= 2 needed)"),
]


@pytest.mark.parametrize("labs,age,laboratory,met,source", LAB_ROWS)
def test_laboratory_tls_table(labs, age, laboratory, met, source):
    a = assess(make_case({"wbc": 150, **NORMAL, **labs}, [], patient={"age_years": age}))
    assert a.tls.laboratory is laboratory, source
    assert sorted(a.tls.criteria_met) == sorted(met), source


def test_missing_labs_make_laboratory_tls_unknown_not_false():
    """outputs.md: tls.laboratory is null when the labs needed are missing."""
    a = assess(make_case({"wbc": 150, "uric_acid": 500}, []))
    assert a.tls.laboratory is None and a.tls.clinical is None
    assert {"potassium", "phosphate", "calcium"} <= set(a.missing_data)
    a = assess(make_case({"wbc": 150, "uric_acid": 500, "potassium": 6.5}, []))
    assert a.tls.laboratory is True  # two met: decided despite the missing ones


def test_twenty_five_percent_change_from_baseline():
    """Cairo-Bishop: +25 % from baseline meets the criterion even below the absolute threshold."""
    labs = {"wbc": 150, "uric_acid": 300, "calcium": 2.3,
            "potassium": [{"value": 4.0, "time": "2026-01-01T00:00:00Z"}, {"value": 5.1, "time": "2026-01-02T00:00:00Z"}],
            "phosphate": [{"value": 1.0, "time": "2026-01-01T00:00:00Z"}, {"value": 1.3, "time": "2026-01-02T00:00:00Z"}]}
    a = assess(make_case(labs, [], patient={"age_years": 50}))
    assert sorted(a.tls.criteria_met) == ["phosphate", "potassium"] and a.tls.laboratory is True
    howard = load_knowledge({"tumour_lysis.definition": "howard"})
    assert assess(make_case(labs, [], patient={"age_years": 50}), howard).tls.laboratory is False  # Howard drops the 25 % rule


# creatinine (with ULN), symptoms, expected clinical TLS, source
CLINICAL = [
    ({"value": 140, "reference_high": 90}, [], True, "creatinine >= 1.5 x ULN (140 >= 135)"),
    ({"value": 130, "reference_high": 90}, [], False, "creatinine < 1.5 x ULN, no arrhythmia/seizure"),
    ({"value": 100, "reference_high": 90}, ["seizure"], True, "seizure is a clinical criterion"),
    ({"value": 100, "reference_high": 90}, ["arrhythmia"], True, "arrhythmia is a clinical criterion"),
    (100, [], None, "no ULN given: the renal criterion cannot be assessed"),
]


@pytest.mark.parametrize("creat,symptoms,clinical,source", CLINICAL)
def test_clinical_tls(creat, symptoms, clinical, source):
    a = assess(make_case({"wbc": 150, **NORMAL, "uric_acid": 500, "potassium": 6.5, "creatinine": creat}, symptoms))
    assert a.tls.laboratory is True
    assert a.tls.clinical is clinical, source


def test_pseudohyperkalaemia_pair_uses_plasma_potassium():
    labs = {"wbc": 300, **NORMAL, "uric_acid": 500, "potassium": 6.8, "potassium_plasma": 4.4}
    a = assess(make_case(labs, []))
    assert "potassium" not in a.tls.criteria_met and a.tls.laboratory is False


# diagnosis, labs, expected risk, source (Cairo 2010 via BMJ Best Practice)
RISK = [
    ("AML", {"wbc": 150}, "high", "AML WBC >= 100"),
    ("AML", {"wbc": 50}, "intermediate", "AML WBC 25-<100"),
    ("AML", {"wbc": 20, "ldh": {"value": 300, "reference_high": 250}}, "low", "AML WBC < 25 and LDH < 2 x ULN"),
    ("AML", {"wbc": 20, "ldh": {"value": 600, "reference_high": 250}}, "intermediate", "AML WBC < 25, LDH >= 2 x ULN"),
    ("AML", {"wbc": 20}, None, "LDH unknown: low vs intermediate undecided"),
    ("ALL", {"wbc": 50, "ldh": {"value": 600, "reference_high": 250}}, "high", "ALL LDH >= 2 x ULN"),
    ("ALL", {"wbc": 50, "ldh": {"value": 300, "reference_high": 250}}, "intermediate", "ALL WBC < 100, LDH < 2 x ULN"),
    ("CLL", {"wbc": 60}, "intermediate", "CLL WBC >= 50"),
    ("CML_CP", {"wbc": 300}, "low", "CML chronic phase = low"),
    ("AML", {"wbc": 50, "creatinine": {"value": 150, "reference_high": 90}}, "high", "intermediate + renal dysfunction -> high"),
    ("CML_CP", {"wbc": 300, "creatinine": {"value": 150, "reference_high": 90}}, "intermediate", "low + renal dysfunction -> intermediate"),
]


@pytest.mark.parametrize("dx,labs,risk,source", RISK)
def test_cairo_2010_risk(dx, labs, risk, source):
    a = assess(make_case(labs, [], findings={"known_diagnosis": dx}))
    assert a.tls.risk == risk, source
