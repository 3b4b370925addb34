"""Each bundled example says what it was written to show."""

from __future__ import annotations

import pytest

from leukos.cli.inputs import read_case
from leukos.rules import assess
from tests.conftest import EXAMPLES

# file, expected (attribute path -> value), what the example was written for
EXPECT = [
    ("01-aml-leukostasis.yaml", {"hyperleukocytosis.present": True, "leukostasis.grade": 3, "tls.laboratory": True,
                                 "leukapheresis.indicated": True, "urgency": "emergent"}, "AML with leukostasis"),
    ("02-apl-coagulopathy.yaml", {"leukapheresis.indicated": False, "leukapheresis.apl_suspected": True,
                                  "dic.overt": True, "urgency": "emergent"}, "APL: no leukapheresis"),
    ("03-all-tls.yaml", {"tls.laboratory": True, "tls.clinical": True, "tls.risk": "high"}, "ALL with TLS"),
    ("04-cml-chronic-phase.yaml", {"hyperleukocytosis.present": True, "leukostasis.grade": 0,
                                   "leukapheresis.indicated": False, "tls.risk": "low"}, "chronic-phase CML"),
    ("05-cll-very-high-count.yaml", {"hyperleukocytosis.present": True, "leukapheresis.indicated": False,
                                     "tls.laboratory": False}, "CLL with a very high count"),
    ("06-leukemoid-reaction.yaml", {"hyperleukocytosis.present": False, "urgency": "routine"}, "leukemoid reaction"),
    ("07-normal-count.yaml", {"hyperleukocytosis.present": False, "leukostasis.grade": 0, "urgency": "routine"},
     "normal count"),
]


def _get(obj, path):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("name,expect,why", EXPECT)
def test_example(kb, name, expect, why):
    a = assess(read_case(str(EXAMPLES / name), kb), kb)
    for path, value in expect.items():
        assert _get(a, path) == value, f"{name} ({why}): {path}"


def test_cll_example_shows_confirmed_pseudohyperkalaemia(kb):
    a = assess(read_case(str(EXAMPLES / "05-cll-very-high-count.yaml"), kb), kb)
    assert "PSEUDOHYPERKALEMIA_CONFIRMED" in {x.code for x in a.artefacts}


def test_aml_example_shows_leukocyte_larceny(kb):
    a = assess(read_case(str(EXAMPLES / "01-aml-leukostasis.yaml"), kb), kb)
    assert "PSEUDOHYPOXEMIA_POSSIBLE" in {x.code for x in a.artefacts}
