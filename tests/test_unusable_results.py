"""The rule for results that cannot be used during a CDS call (leukos.interop.unusable)."""

from __future__ import annotations

import datetime as dt

from leukos.domain.case import LabValue
from leukos.interop.unusable import Unusable, is_unusable_note, leave_out_measurement, leave_out_results

T = [dt.datetime(2026, 3, d, 8, tzinfo=dt.UTC) for d in (1, 2, 3)]
LABELS = {"wbc": "White cell count"}


def _wbc(value: float, time: dt.datetime | None) -> LabValue:
    return LabValue(analyte="wbc", value=value, unit="10*9/L", given=f"{value:g} 10*9/L", time=time)


def _apply(series: list[LabValue], bad: list[Unusable]) -> tuple[list[LabValue] | None, list[str]]:
    labs = {"wbc": list(series)}
    notes = leave_out_results(labs, {"wbc": bad}, LABELS)
    return labs.get("wbc"), notes


def test_an_unusable_result_at_or_after_the_latest_leaves_the_analyte_not_assessed():
    for when in (T[1], T[2], None):  # the same time, later, or not known
        kept, notes = _apply([_wbc(182, T[0]), _wbc(260, T[1])], [Unusable(when, "Observation/x gives 9e7")])
        assert kept is None, when
        assert len(notes) == 1 and is_unusable_note(notes[0]) and "not assessed" in notes[0]


def test_an_unusable_result_before_a_usable_one_is_only_left_out():
    series = [_wbc(182, T[0]), _wbc(260, T[2])]
    kept, notes = _apply(series, [Unusable(T[1], "Observation/x gives 9e7")])
    assert kept == series
    assert "left out of the series" in notes[0] and "not assessed" not in notes[0]


def test_a_usable_result_without_a_time_never_outranks_an_unusable_one():
    kept, _ = _apply([_wbc(260, None)], [Unusable(T[0], "Observation/x gives 9e7")])
    assert kept is None


def test_with_no_usable_result_the_analyte_stays_missing():
    labs: dict[str, list[LabValue]] = {}
    notes = leave_out_results(labs, {"wbc": [Unusable(T[0], "a"), Unusable(None, "b")]}, LABELS)
    assert labs == {} and len(notes) == 2 and all(is_unusable_note(n) for n in notes)


def test_a_body_measurement_follows_the_same_rule():
    assert leave_out_measurement((T[0], 70.0), [Unusable(T[1], "w")], "Weight")[0] is None
    assert leave_out_measurement((T[2], 70.0), [Unusable(T[1], "w")], "Weight")[0] == (T[2], 70.0)
    kept, notes = leave_out_measurement(None, [Unusable(None, "w")], "Weight")
    assert kept is None and "Weight is not recorded" in notes[0]
