"""Spec table: ISTH overt DIC score (clinical.md §6; scoring verified via ASH-SAP)."""

from __future__ import annotations

import pytest

from leukos.rules import assess
from tests.conftest import make_case

DD = {"value": 0.4, "reference_high": 0.5}  # below 2 x ULN: 0 points

# labs, expected items, score, overt, source
ROWS = [
    ({"platelets": 150, "d_dimer": DD, "pt_seconds": 12, "pt_control_seconds": 12, "fibrinogen": 3.0},
     {"platelets": 0, "fibrin_marker": 0, "pt_prolongation": 0, "fibrinogen": 0}, 0, False, "all normal"),
    ({"platelets": 100, "d_dimer": DD, "pt_seconds": 15, "pt_control_seconds": 12, "fibrinogen": 1.0},
     {"platelets": 1, "fibrin_marker": 0, "pt_prolongation": 1, "fibrinogen": 1}, 3, False,
     "platelets 50-100 = 1 (100 not > 100); PT +3 s = 1; fibrinogen <= 1.0 = 1"),
    ({"platelets": 49, "d_dimer": {"value": 1.0, "reference_high": 0.5}, "pt_seconds": 18.5, "pt_control_seconds": 12,
      "fibrinogen": 0.9}, {"platelets": 2, "fibrin_marker": 2, "pt_prolongation": 2, "fibrinogen": 1}, 7, True,
     "platelets < 50 = 2; D-dimer 2 x ULN = moderate 2 (PMC8607173); PT +6.5 s = 2; total 7 >= 5 overt"),
    ({"platelets": 80, "d_dimer": {"value": 2.5, "reference_high": 0.5}, "pt_seconds": 12, "pt_control_seconds": 12,
      "fibrinogen": 2.0}, {"platelets": 1, "fibrin_marker": 3, "pt_prolongation": 0, "fibrinogen": 0}, 4, False,
     "D-dimer 5 x ULN = strong 3 (original 2/3, not the CCJM 1/2); total 4 < 5"),
    ({"platelets": 40, "d_dimer": {"value": 2.5, "reference_high": 0.5}, "pt_seconds": 12, "pt_control_seconds": 12,
      "fibrinogen": 2.0}, {"platelets": 2, "fibrin_marker": 3, "pt_prolongation": 0, "fibrinogen": 0}, 5, True,
     "total 5 = overt (>= 5)"),
]


@pytest.mark.parametrize("labs,items,score,overt,source", ROWS)
def test_isth_table(labs, items, score, overt, source):
    dic = assess(make_case({"wbc": 150, **labs}, [])).dic
    assert dict(dic.items) == items, source
    assert dic.isth_score == score and dic.overt is overt, source


def test_incomplete_score_gives_a_range_and_decides_only_when_it_can():
    # platelets 2 + fibrinogen 1 known; fibrin marker (0-3) and PT (0-2) missing: 3-8, undecided
    dic = assess(make_case({"wbc": 150, "platelets": 30, "fibrinogen": 0.8}, [])).dic
    assert dic.isth_score is None and tuple(dic.score_range) == (3, 8) and dic.overt is None
    # known 5 already: overt whatever the missing items
    dic = assess(make_case({"wbc": 150, "platelets": 30, "fibrinogen": 0.8, "pt_seconds": 20, "pt_control_seconds": 12}, [])).dic
    assert dic.overt is True and dic.isth_score is None


def test_d_dimer_without_assay_uln_is_not_scored():
    a = assess(make_case({"wbc": 150, "d_dimer": 5.0}, []))
    assert a.dic.items["fibrin_marker"] is None and "labs.d_dimer.reference_high" in a.missing_data
