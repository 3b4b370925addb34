"""The rules' lean paths for the ranking alone give what the full paths give.

``cml_phase_code`` (the CML phase's code without its working, used when the differential is ranked
but not explained) equals ``cml_phase(...).code`` for every published validation case and every
bundled example, under each CML phase classification, with and without the case's features.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leukos.interop.case_format import case_from_dict, load_case_text
from leukos.knowledge import load_knowledge
from leukos.rules.differential.cml_phase import cml_phase, cml_phase_code
from leukos.rules.differential.features import Features, checked_rules

REPO = Path(__file__).resolve().parents[1]


def _cases() -> list:
    out = []
    for line in (REPO / "data" / "validation" / "published_cases.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(case_from_dict(json.loads(line)["case"]))
    for p in sorted((REPO / "examples").iterdir()):
        if p.suffix in (".yaml", ".yml", ".json"):
            out.append(load_case_text(p.read_bytes(), name=p.name))
    assert len(out) >= 74
    return out


CASES = _cases()


@pytest.mark.parametrize("system", ["WHO2016", "ELN", "WHO2022", "ICC2022"])
def test_phase_code_alone_is_the_phase_code(system):
    kb = load_knowledge({"differential.cml_phase_system": system})
    codes = set()
    for case in CASES:
        full = cml_phase(case, kb).code
        assert cml_phase_code(case, kb) == full
        assert cml_phase_code(case, kb, Features(case, kb, checked_rules(kb))) == full
        codes.add(full)
    assert len(codes) >= 3, codes  # the cases reach several phases, not only "undetermined"


def test_a_cases_time_text_is_each_times_isoformat():
    """``Case.time_text`` writes each time once per case, and always as ``isoformat`` would, even for
    times that are equal as instants but written differently (other offset, naive)."""
    import dataclasses
    import datetime as dt

    utc = dt.datetime(2026, 3, 1, 12, 7, 1, tzinfo=dt.UTC)
    same_instant = utc.astimezone(dt.timezone(dt.timedelta(hours=2)))
    with_micro = dt.datetime(2026, 3, 1, 12, 7, 1, 250, tzinfo=dt.UTC)
    naive = dt.datetime(2026, 3, 1, 12, 7, 1)
    case = CASES[0]
    for t in (utc, same_instant, with_micro, naive, utc, same_instant):
        assert case.time_text(t) == t.isoformat()
    assert same_instant == utc and case.time_text(same_instant) != case.time_text(utc)
    # one call's memo: a copy of the case starts without it
    assert "case.time_text" not in dataclasses.replace(case).__dict__.get("_derived", {})
