"""Spec table: laboratory artefacts of extreme leukocytosis (clinical.md §4)."""

from __future__ import annotations

import pytest

from leukos.rules import assess
from tests.conftest import make_case

# labs, findings, expected codes (set), source
ROWS = [
    ({"wbc": 250, "potassium": 6.4}, {}, {"PSEUDOHYPERKALEMIA_POSSIBLE"}, "Mahto 2021; Ku 2014: high K in extreme leukocytosis"),
    ({"wbc": 80, "potassium": 6.4}, {}, set(), "no hyperleukocytosis: not flagged"),
    ({"wbc": 250, "potassium": 6.6, "potassium_plasma": 4.3}, {}, {"PSEUDOHYPERKALEMIA_CONFIRMED"},
     "serum - plasma K > 0.4 mmol/L defines it (Mahto 2021)"),
    ({"wbc": 250, "potassium": 4.6, "potassium_plasma": 4.3}, {}, set(), "difference 0.3 <= 0.4: not pseudohyperkalaemia"),
    ({"wbc": 250, "potassium": 4.0, "potassium_plasma": 4.6}, {"known_diagnosis": "CLL"}, {"REVERSE_PSEUDOHYPERKALEMIA"},
     "plasma K > serum K (Garwicz 2012)"),
    ({"wbc": 170, "pao2": 50, "spo2": 97}, {}, {"PSEUDOHYPOXEMIA_POSSIBLE"}, "PaO2 < 55 with SpO2 > 94 (Van de Louw)"),
    ({"wbc": 170, "pao2": 50, "spo2": 90}, {}, set(), "SpO2 low too: hypoxaemia is real"),
    ({"wbc": 170, "pao2": 50}, {}, {"PAO2_UNCONFIRMED"}, "no SpO2 to check: say so"),
    ({"wbc": 250, "platelets": 40, "blasts_pct": 70}, {}, {"SPURIOUS_PLATELETS_POSSIBLE"}, "Zandecki 2007 part I"),
    ({"wbc": 60, "hemoglobin": 9}, {}, {"SPURIOUS_RBC_INDICES_POSSIBLE"}, "WBC > 50: Hb/MCV falsely raised (Ravel; Zandecki II)"),
    ({"wbc": 50, "hemoglobin": 9}, {}, set(), "WBC not above 50"),
    ({"wbc": 250, "potassium": {"value": 3.0, "reference_low": 3.5}}, {}, {"PSEUDOHYPOKALEMIA_POSSIBLE"},
     "in-vitro uptake (Ann Clin Biochem 2010)"),
    ({"wbc": 250, "phosphate": {"value": 0.5, "reference_low": 0.8}}, {}, {"PSEUDOHYPOPHOSPHATEMIA_POSSIBLE"},
     "in-vitro uptake (Ann Clin Biochem 2010)"),
    ({"wbc": 90, "uric_acid": 100}, {"treatment": ["rasburicase"]}, {"URIC_ACID_AFTER_RASBURICASE"}, "rasburicase label"),
]


@pytest.mark.parametrize("labs,findings,codes,source", ROWS)
def test_artefact_table(labs, findings, codes, source):
    a = assess(make_case(labs, [], findings=findings))
    assert {x.code for x in a.artefacts} == codes, source
    for x in a.artefacts:
        assert x.action and x.citations and x.working
