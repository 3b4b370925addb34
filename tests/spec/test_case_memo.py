"""What one assessment works out from a case once (``Case.derived``) lives with that case object only,
and what it reads (lab values as intervals, derived cell counts) is what a direct reading gives."""

from __future__ import annotations

import dataclasses
import math

from leukos.interop.case_format import case_from_dict
from leukos.rules.differential.quantities import Interval, absolute, lab, percent


def _case():
    return case_from_dict({"labs": {"wbc": {"value": 1000, "unit": "10*9/L", "comparator": ">"},
                                    "monocytes_pct": 12, "basophils_abs": 0.5, "blasts_pct": {"value": 1, "unit": "%",
                                                                                              "comparator": "<"}},
                           "symptoms": []})


def test_a_derivation_is_built_once_per_case_object_and_never_carried_to_a_replaced_case():
    case = _case()
    calls = []

    def build(c):
        calls.append(c)
        return len(calls)

    assert case.derived("test.count", build) == 1
    assert case.derived("test.count", build) == 1
    assert calls == [case]
    other = dataclasses.replace(case)
    assert other.derived("test.count", build) == 2  # a new object starts empty
    assert other == case  # the memo is not a field: equality, repr and replace ignore it
    assert "test.count" not in repr(case)
    assert "_derived" not in {f.name for f in dataclasses.fields(case)}


def test_lab_intervals_and_derived_counts_read_the_case_as_given():
    case = _case()
    assert lab(case, "wbc") == Interval(1000.0, math.inf)  # '>1000' bounds from below only
    assert lab(case, "blasts_pct") == Interval(0.0, 1.0)  # '<1' bounds from above only
    assert lab(case, "platelets") is None  # not recorded: unknown, never normal
    mono = absolute(case, "monocytes")  # 12 % of a WBC above 1000: at least 120
    assert mono == Interval(120.0, math.inf)
    assert absolute(case, "monocytes") is mono  # once per case
    baso = percent(case, "basophils")  # 0.5 of a WBC above 1000: at most 0.05 %
    assert baso == Interval(0.0, 0.05)
