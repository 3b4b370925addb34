"""Spec table: hyperleukocytosis (clinical.md §1)."""

from __future__ import annotations

import pytest

from leukos.knowledge import load_knowledge
from leukos.rules import assess
from tests.conftest import make_case

# labs, findings, expected present, expected absolute blasts, source of the expectation
ROWS = [
    ({"wbc": 250, "blasts_pct": 80}, {}, True, 200.0, "clinical.md §1: HL = WBC > 100 (Ganzel 2012); blasts = WBC x % / 100 (§10)"),
    ({"wbc": 100}, {}, False, None, "clinical.md §1: '> 100' is strict"),
    ({"wbc": 100.1}, {}, True, None, "clinical.md §1: > 100"),
    ({"wbc": 99}, {}, False, None, "clinical.md §1"),
    ({"wbc": {"value": 100, "unit": "10*9/L", "comparator": ">"}}, {}, True, None, "a '>' result above the limit is above it"),
    ({"wbc": {"value": 150, "unit": "10*9/L", "comparator": "<"}}, {}, None, None, "'<150' cannot be placed against 100"),
    ({}, {}, None, None, "outputs.md: missing data reported as missing, never normal"),
    ({"wbc": "180 K/uL", "blasts_pct": 50}, {}, True, 90.0, "clinical.md §10: K/uL = 10^3/uL = 10^9/L"),
]


@pytest.mark.parametrize("labs,findings,present,blasts,source", ROWS)
def test_hyperleukocytosis_table(labs, findings, present, blasts, source):
    a = assess(make_case(labs, findings=findings))
    assert a.hyperleukocytosis.present is present, source
    assert a.absolute_blasts_10e9_per_l == blasts, source
    if not labs:
        assert "wbc" in a.missing_data


def test_threshold_is_a_documented_setting():
    """clinical.md §1: some authors (UpToDate) use > 50 x10^9/L."""
    kb = load_knowledge({"hyperleukocytosis.wbc_threshold": 50})
    a = assess(make_case({"wbc": 60}), kb)
    assert a.hyperleukocytosis.present is True and a.hyperleukocytosis.threshold_10e9_per_l == 50
    assert a.settings["hyperleukocytosis.wbc_threshold"] == 50
    assert any("changed by the site configuration" in w for w in a.warnings)


# findings, a fragment of the lineage note, source
LINEAGE = [
    ({"known_diagnosis": "AML", "immunophenotype": "monocytic"}, "Monocytic AML", "Röllig 2015; PathologyOutlines"),
    ({"known_diagnosis": "ALL"}, "ALL: leukostasis is uncommon below 400", "Lowe 2005"),
    ({"known_diagnosis": "CLL"}, "no guideline threshold", "clinical.md §1: do NOT encode a hard cut-off for CLL"),
    ({"known_diagnosis": "APL"}, "APL: high-risk disease at WBC > 10", "Sanz 2019"),
    ({"genetics": {"pml_rara": "positive"}}, "APL", "Sanz 2019"),
    ({"known_diagnosis": "CML_CP"}, "no verified numeric cut-off", "clinical.md §1: CML cut-off [U] not encoded"),
]


@pytest.mark.parametrize("findings,fragment,source", LINEAGE)
def test_lineage_notes(findings, fragment, source):
    a = assess(make_case({"wbc": 150}, findings=findings))
    assert any(fragment in n for n in a.hyperleukocytosis.lineage_notes), source
