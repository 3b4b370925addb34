"""The short ways of wording a laboratory result's line and an unmarked text give the long way's words.

``_quantity_words`` words a plain laboratory result (``LabValue.to_working``) in one expression
(``_result_words``); a mapping that is not a plain dict takes the general steps, so the two are
compared on the same members. ``_clinical_text`` returns a text with none of the characters or pieces
its patterns need at once, and runs the code-name pattern only over a text where a name may start
(``_may_hold_code``: not over a patient's decimal number); random texts over an alphabet of those characters and pieces compare it
with every substitution run over the text.
"""

from __future__ import annotations

import random
from types import MappingProxyType

import pytest

from leukos import present
from leukos.knowledge import load_knowledge
from tests.test_present_words import _every_substitution

KB = load_knowledge()

_RESULTS = [
    {"value": 258.0, "unit": "10*9/L", "given": "258 10*3/uL", "time": "2026-03-01T18:00:00+00:00",
     "reference_high": 11.0, "reference_low": 4.0, "source": "fhir:Observation/p0-lab-003"},
    {"value": 84.6, "unit": "%", "given": "84.6 %", "reference_high": 0.5, "reference_low": 0.0,
     "source": "fhir:Observation/p0-lab-006"},
    {"value": 563.9, "unit": "umol/L", "given": "9.48 mg/dL", "reference_high": 428.3},
    {"value": 1.724, "unit": "mmol/L", "given": "5.34 mg/dL", "reference_low": 0.8072, "comparator": ">"},
    {"value": 6.13, "unit": "mmol/L", "given": "6.13 mmol/L", "source": "ganzel_2012"},
    {"value": 7.0, "unit": "", "given": "", "source": ""},
    {"value": 1e7, "unit": "10*9/L", "given": "1e7 10*9/L", "source": "fhir:Observation/wbc.ldh_2"},
    {"value": float("nan"), "unit": "unknown-unit", "given": "x y", "reference_low": 1e-7, "reference_high": 1e7},
    {"value": 12.5, "unit": "g/dL", "given": "12.5 g/dL", "source": "see [ganzel_2012]"},
    # members the short way does not take: the general steps word them
    {"value": 5, "unit": "mmol/L", "given": "5 mmol/L"},
    {"value": 5.0, "unit": "mmol/L", "given": "5 mmol/L", "reference_high": 6},
    {"value": 5.0, "unit": "mmol/L", "given": "5 mmol/L", "source": ["ganzel_2012", "fhir:Observation/1"]},
    {"value": 5.0, "unit": "mmol/L", "given": "5 mmol/L", "status": "V"},
    {"value": 5.0, "unit": None, "given": 5.0},
]


@pytest.mark.parametrize("d", _RESULTS)
def test_a_results_line_is_the_general_steps_line(d):
    lab = present.labels(KB)
    assert present._quantity_words(d, KB, lab) == present._quantity_words(MappingProxyType(d), KB, lab)


def test_the_short_way_takes_a_plain_result():
    """It is the short way that is compared above (not the general steps twice)."""
    lab = present.labels(KB)
    assert present._result_words(_RESULTS[0], KB, lab) is not None
    assert present._result_words(_RESULTS[-1], KB, lab) is None


_PIECES = ["`", "[", "]", ".", "_", "^", "*", "{", "}", "=", ">", "<", "-", "/", " ", "x", "L", "uL", "mL", "ldh",
           "inr", "wbc", "tls", "dic", "umol/L", "ug/mL", "10^9/L", "mm[Hg]", "{INR}", "labs", "creatinine", "APL",
           "SUSPECTED", "fhir:Observation", "p7-lab-003", "ganzel_2012", "0", "9", "a", "Z", ",", ":", "#", "@", "1a",
           "known_diagnosis", "reference_high", "findings", "219.891", "x7"]


def test_random_texts_read_as_every_substitution_says():
    lab = present.labels(KB)
    rng = random.Random(11)
    for _ in range(20000):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 8)))
        assert present._clinical_text(text, lab) == _every_substitution(text), text
