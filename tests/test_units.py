"""Units: aliases, UCUM, canonical conversion, dimension checks and plausibility.

Expected values come from clinical.md §10 (conversion factors and their worked examples) and
case-format.md (the aliases that must work)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leukos.errors import ImplausibleValueError, UnitError
from leukos.units import UnitConverter, normalise_unit, parse_value_with_unit


@pytest.fixture(scope="module")
def conv(kb):
    return UnitConverter(kb)


# analyte, value, unit, expected canonical, source of the expectation
CONVERSIONS = [
    ("wbc", 100, "10*9/L", 100, "clinical.md §10: 1 x10^9/L = 1 x10^3/uL"),
    ("wbc", 100, "10*3/uL", 100, "clinical.md §10"),
    ("wbc", 100_000, "/uL", 100, "clinical.md §10: 100 x10^9/L = 100,000/uL"),
    ("wbc", 100, "K/uL", 100, "case-format.md alias; 1 K/uL = 1 x10^3/uL (clinical.md §10)"),
    ("wbc", 100, "k/uL", 100, "case-format.md alias"),
    ("wbc", 100, "x10E3/uL", 100, "case-format.md alias"),
    ("wbc", 100, "10^3/uL", 100, "case-format.md alias"),
    ("wbc", 100, "thou/uL", 100, "case-format.md alias"),
    ("wbc", 100_000, "cells/uL", 100, "case-format.md alias"),
    ("wbc", 100_000, "/mm3", 100, "case-format.md alias (1 mm3 = 1 uL)"),
    ("wbc", 100, "G/L", 100, "case-format.md alias (giga per litre, not gauss)"),
    ("wbc", 100, "x10E9/L", 100, "case-format.md alias"),
    ("wbc", 100, "×10⁹/L", 100, "typographic spelling of 10*9/L"),
    ("platelets", 28, "10*3/mm3", 28, "codes.md: 10*3/uL = 10*9/L = 10*3/mm3"),
    ("uric_acid", 8, "mg/dL", 476, "clinical.md §10: 8 mg/dL = 476 umol/L"),
    ("phosphate", 4.5, "mg/dL", 1.45, "clinical.md §10: 4.5 mg/dL = 1.45 mmol/L"),
    ("phosphate", 6.5, "mg/dL", 2.1, "clinical.md §10: 6.5 mg/dL = 2.1 mmol/L"),
    ("calcium", 7, "mg/dL", 1.75, "clinical.md §10: 7 mg/dL = 1.75 mmol/L"),
    ("creatinine", 0.3, "mg/dL", 26.5, "clinical.md §10: 0.3 mg/dL = 26.5 umol/L"),
    ("fibrinogen", 100, "mg/dL", 1.0, "clinical.md §10: 1.0 g/L = 100 mg/dL"),
    ("fibrinogen", 1.0, "g/L", 1.0, "canonical"),
    ("d_dimer", 2.0, "ug/mL FEU", 2.0, "case-format.md alias; 1 ug/mL = 1 mg/L"),
    ("potassium", 5.0, "mEq/L", 5.0, "monovalent: 1 mEq/L = 1 mmol/L"),
    ("calcium", 4.0, "mEq/L", 2.0, "divalent: 2 mEq = 1 mmol"),
    ("hematocrit", 0.23, "L/L", 23, "volume fraction to %"),
    ("pao2", 8, "kPa", 60.0, "1 kPa = 7.50 mmHg (SI definition)"),
]


@pytest.mark.parametrize("analyte,value,unit,expected,source", CONVERSIONS)
def test_conversion_table(conv, analyte, value, unit, expected, source):
    got = conv.to_canonical(analyte, value, unit, field=f"labs.{analyte}")
    assert got == pytest.approx(expected, rel=5e-3), source


@pytest.mark.parametrize("unit", ["K/uL", "k/uL", "K/ul"])
def test_k_per_ul_is_never_kelvin(conv, unit):
    assert conv.factor("wbc", unit, field="u") == pytest.approx(1.0)


@pytest.mark.parametrize("analyte,unit,message", [
    ("wbc", "mg/dL", "wrong dimension"),
    ("wbc", "furlongs", "not a known unit"),
    ("potassium", "g/dL", "wrong dimension"),
    ("d_dimer", "ng/mL DDU", "FEU"),
    ("hemoglobin", "mmol/L", "wrong dimension"),
    ("wbc", "K/L", "wrong dimension"),  # UCUM K is kelvin: only the K/uL family is aliased
])
def test_bad_units_name_field_and_fix(conv, analyte, unit, message):
    with pytest.raises(UnitError) as err:
        conv.to_canonical(analyte, 1.0, unit, field=f"labs.{analyte}")
    d = err.value.details[0]
    assert d.field == f"labs.{analyte}.unit" and d.value == unit and message in d.fix


@pytest.mark.parametrize("analyte,value,unit,hint", [
    ("wbc", 250_000, None, "cells per microlitre"),   # case-format.md: WBC 250000 given as 10*9/L
    ("potassium", 60, None, "check the value"),       # case-format.md: potassium 60
    ("wbc", -1, None, "check the value"),             # a negative count
    ("hematocrit", 0.3, None, "fraction"),
    ("wbc", 150_000, "10*3/uL", "cells per microlitre"),  # the x1000 slip (interop-and-stack.md §3)
])
def test_implausible_values_are_rejected_with_a_hint(conv, analyte, value, unit, hint):
    with pytest.raises(ImplausibleValueError) as err:
        conv.to_canonical(analyte, value, unit, field=f"labs.{analyte}")
    assert hint in err.value.details[0].fix


def test_normalise_and_split():
    assert normalise_unit("x10^9/L") == "10*9/L"
    assert normalise_unit(" 10E3 / uL ") == "10*3/uL"
    assert parse_value_with_unit("250 K/uL") == (250.0, "K/uL", None)
    assert parse_value_with_unit(">1000 10*9/L") == (1000.0, "10*9/L", ">")
    assert parse_value_with_unit("7,7 g/dL") == (7.7, "g/dL", None)
    with pytest.raises(ValueError):
        parse_value_with_unit("high")


ROUND_TRIP_UNITS = {
    "wbc": ["10*9/L", "10*3/uL", "K/uL", "/uL", "G/L"],
    "uric_acid": ["umol/L", "mg/dL", "mmol/L"],
    "creatinine": ["umol/L", "mg/dL"],
    "calcium": ["mmol/L", "mg/dL", "mEq/L"],
    "fibrinogen": ["g/L", "mg/dL"],
}


@settings(max_examples=150, deadline=None)
@given(analyte=st.sampled_from(sorted(ROUND_TRIP_UNITS)), data=st.data())
def test_round_trip_through_any_accepted_unit(kb, analyte, data):
    """Converting x canonical -> unit U -> canonical gives x back (within float error)."""
    conv = UnitConverter(kb)
    low, high = kb.analyte(analyte).plausible
    x = data.draw(st.floats(min_value=max(low, 1e-3), max_value=high, allow_nan=False))
    unit = data.draw(st.sampled_from(ROUND_TRIP_UNITS[analyte]))
    f = conv.factor(analyte, unit, field="f")
    back = conv.to_canonical(analyte, x / f, unit, field="f")
    assert back == pytest.approx(x, rel=1e-9)
