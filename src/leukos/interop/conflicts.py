"""Results of one analyte at the same time that disagree: one rule for every input path.

Two WBC results timed 08:00 — 260 and 12 ×10⁹/L — cannot both be the patient's count, and picking
either by its position in the file makes the answer depend on the order the EHR happened to send.
The rule, applied by the case-format reader and the FHIR importer alike (so the CLI, ``/api/assess``
and CDS Hooks agree):

1. Results of an analyte are grouped by time (an instant; results without a time form one group).
2. A group whose results are all equal (same canonical value and comparator) is one result: the
   duplicates are merged.
3. A group whose results differ is **conflicting**. If it is the analyte's latest group, the analyte
   is *not assessed*: its whole series is left out, so every rule reports it as missing data, never
   an older or arbitrary value. An earlier conflicting group is left out of the series. Either way a
   note names the results, and the note is carried into the assessment's warnings.

The result does not depend on the order of the input: series are sorted by (time, value).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from operator import attrgetter

from leukos.domain.case import LabValue

__all__ = ["resolve_same_time", "CONFLICT_MARK", "NOT_ASSESSED_MARK", "is_conflict_note"]

CONFLICT_MARK = "conflicting results at the same time"
# What a note says, after the analyte's label, when the analyte is left out entirely (its latest result
# conflicts here, or cannot be used: leukos.interop.unusable writes the same words).
NOT_ASSESSED_MARK = "is not assessed (treated as missing)"


def is_conflict_note(note: str) -> bool:
    """True for the notes :func:`resolve_same_time` writes (surfaces show them prominently)."""
    return CONFLICT_MARK in note


def _key(v: LabValue) -> tuple[float, str]:
    return (round(v.value, 9), v.comparator or "")


def _when(t: dt.datetime | None) -> str:
    return t.isoformat().replace("+00:00", "Z") if t is not None else "without a time"


_NO_TIME = dt.datetime.min.replace(tzinfo=dt.UTC)  # where results without a time sort


def _order(v: LabValue) -> tuple[bool, dt.datetime, tuple[float, str], str]:
    return (v.time is not None, v.time or _NO_TIME, _key(v), v.source or "")


_by_time = attrgetter("time")  # the sort key when every result of a series has a time


def _describe(v: LabValue, units: Mapping[str, str]) -> str:
    """The result as entered, a unit code in the words people write it (``10*3/uL`` as ×10³/µL), and
    where it came from."""
    where = v.source.removeprefix("fhir:") if v.source and v.source != "case" else None
    number, sep, unit = str(v.given).partition(" ")
    shown = f"{number} {units[unit]}".rstrip() if sep and unit in units else str(v.given)
    return shown + (f" ({where})" if where else "")


def resolve_same_time(labs: Mapping[str, list[LabValue] | tuple[LabValue, ...]],
                      labels: Mapping[str, str] | None = None, units: Mapping[str, str] | None = None,
                      ) -> tuple[dict[str, tuple[LabValue, ...]], list[str]]:
    """Apply the rule above. Returns the time-sorted series per analyte and the notes to carry.
    ``labels``: analyte -> its name in the notes; ``units``: unit code -> how the notes write it
    (the knowledge base's unit display)."""
    out: dict[str, tuple[LabValue, ...]] = {}
    notes: list[str] = []
    for name, values in labs.items():
        if len(values) == 1:  # one result (the usual case): the series below would be just that result
            out[name] = (values[0],)
            continue
        times = [v.time for v in values]
        if times and None not in times and len(set(times)) == len(times):
            # The usual series: every result at its own time. Sorted by time it is the same order as by
            # the full key below (the time decides every comparison), and no two results form a group.
            out[name] = tuple(sorted(values, key=_by_time))
            continue
        label = (labels or {}).get(name, name)
        ordered = sorted(values, key=_order)
        groups: list[list[LabValue]] = []
        for v in ordered:
            if groups and groups[-1][0].time == v.time:
                groups[-1].append(v)
            else:
                groups.append([v])
        kept: list[LabValue] = []
        for i, group in enumerate(groups):
            if len(group) == 1 or len({_key(v) for v in group}) == 1:  # one result, or duplicates of one
                kept.append(group[0])
                continue
            shown = ", ".join(_describe(v, units or {}) for v in group)
            if i == len(groups) - 1:
                notes.append(f"{label}: {CONFLICT_MARK} ({_when(group[0].time)}): {shown}. "
                             f"{label} {NOT_ASSESSED_MARK}; resolve the duplicate in the "
                             "laboratory system.")
                kept = []
                break
            notes.append(f"{label}: {CONFLICT_MARK} ({_when(group[0].time)}): {shown}; "
                         "left out of the series.")
        if kept:
            out[name] = tuple(kept)
    return out, notes
