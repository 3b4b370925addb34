"""A result in the record that cannot be used, during a CDS call: left out, said on every card.

A haemoglobin of 900 g/dL, a white count in a unit no converter knows ("furlongs"), a count in
mg/dL: the case format and the REST FHIR import refuse such a result (422 naming the element), so
that whoever sends it corrects it. During a CDS Hooks call nobody can: the EHR shows no card for a
refused call, so one mis-mapped result would hide the hyperleukocytosis card of a white count of 250.
There the import leaves the result out instead, and the rule below decides what the rest says.

The rule is the conflict rule's (:mod:`leukos.interop.conflicts`), with the unusable result in
place of a conflicting group, so that no older value speaks for a newer one that could not be read:

1. An unusable result *at or after* the analyte's latest usable one (or without a time, or with no
   usable one at all) makes the analyte **not assessed**: its whole series is left out, and every
   rule reports it as missing data.
2. An unusable result *before* a usable one is only left out of the series.

Either way a note names the result and why it could not be used; the CDS cards carry it
(:func:`is_unusable_note`). Body measurements (weight, height) follow the same rule, with the
latest measurement in place of the series.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from leukos.domain.case import LabValue
from leukos.interop.conflicts import NOT_ASSESSED_MARK

__all__ = ["Unusable", "UNUSABLE_MARK", "is_unusable_note", "leave_out_results", "leave_out_measurement"]

UNUSABLE_MARK = "cannot be used"


def is_unusable_note(note: str) -> bool:
    """True for the notes this module writes (the CDS cards show them, as they show conflicts)."""
    return UNUSABLE_MARK in note


@dataclass(frozen=True)
class Unusable:
    """One result left out: when it was taken (None: not known) and what is wrong with it, in words
    ("Observation/w1 gives 9e+07 10*3/uL, which is not a plausible result")."""

    time: dt.datetime | None
    why: str


def _unusable_is_latest(usable_times: list[dt.datetime | None], bad: list[Unusable]) -> bool:
    """Rule 1: True when no usable result is later than every unusable one (an unknown time, of an
    unusable result or a usable one, is never taken as earlier or later)."""
    if any(u.time is None for u in bad):
        return True
    latest_bad = max(u.time for u in bad)  # type: ignore[type-var]
    return not any(t is not None and t > latest_bad for t in usable_times)


def leave_out_results(labs: dict[str, list[LabValue]], unusable: Mapping[str, list[Unusable]],
                      labels: Mapping[str, str]) -> list[str]:
    """Apply the rule to the laboratory series ``labs`` (changed in place); the notes to carry."""
    notes: list[str] = []
    for analyte, bad in unusable.items():
        label = labels.get(analyte, analyte)
        series = labs.get(analyte, [])
        if _unusable_is_latest([v.time for v in series], bad):
            labs.pop(analyte, None)
            verdict = f"{label} {NOT_ASSESSED_MARK}; correct the result in the laboratory system."
        else:
            verdict = "It is left out of the series; the later result is used."
        notes.extend(f"{label}: {u.why}, so it {UNUSABLE_MARK}. {verdict}" for u in bad)
    return notes


def leave_out_measurement(kept: tuple[dt.datetime | None, float] | None, bad: list[Unusable],
                          label: str) -> tuple[tuple[dt.datetime | None, float] | None, list[str]]:
    """The same rule for a body measurement: ``kept`` is the latest usable one (time, value)."""
    if _unusable_is_latest([] if kept is None else [kept[0]], bad):
        kept, verdict = None, f"{label} is not recorded; correct the measurement in the record."
    else:
        verdict = "It is left out; the later measurement is used."
    return kept, [f"{label}: {u.why}, so it {UNUSABLE_MARK}. {verdict}" for u in bad]
