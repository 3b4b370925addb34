"""Issue 9, bad input: a bare number keeps its documented canonical unit, and the assessment says
which values were read that way."""

from __future__ import annotations

from leukos.interop.case_format import case_from_dict
from leukos.rules import assess


def unit_warnings(labs):
    a = assess(case_from_dict({"labs": labs, "symptoms": []}))
    return [w for w in a.warnings if w.startswith("Given without a unit")]


def test_bare_numbers_are_listed_with_the_unit_they_were_read_in():
    (w,) = unit_warnings({"wbc": 250, "hemoglobin": 8, "platelets": {"value": 30, "unit": "10*9/L"}})
    assert "White cell count 250 read as 250 x10^9/L" in w
    assert "Haemoglobin 8 read as 8 g/dL" in w
    assert "latelet" not in w  # given with its unit


def test_values_with_units_raise_no_unit_warning():
    assert unit_warnings({"wbc": "250 K/uL", "blasts_pct": {"value": 40, "unit": "%"}}) == []


def test_bare_numbers_in_a_series_are_each_reported():
    (w,) = unit_warnings({"wbc": [{"value": 180, "time": "2024-01-01T08:00:00Z"},
                                  {"value": 150, "unit": "10*9/L", "time": "2024-01-02T08:00:00Z"}]})
    assert "180" in w and "150" not in w
