"""Whether the age a case derives from a birth date is a person's age: one rule for every reader.

A birth date after the case's own time (a typing slip, a date of the wrong century) gives a
negative age, which the rules would read as a child's: the tumour lysis criteria would take their
paediatric limits for an adult. A birth date more than 130 years earlier is no more plausible. The
bounds (:data:`leukos.domain.case.AGE_YEARS_MIN` and ``AGE_YEARS_MAX``: software plausibility limits,
not clinical thresholds) are also those of ``patient.age_years`` in the case format's schema, and
population screening applies them to a year of birth (:mod:`leukos.screening.episodes`).

The readers answer differently, each as its users need: the case format (a person typing) refuses
the case, naming the field; the FHIR import (a record the clinician cannot correct during a CDS
call) leaves the birth date out, says so in the case's notes, and goes on, so that the cards the
other data support still reach the clinician.
"""

from __future__ import annotations

from datetime import date, datetime

from leukos.domain.case import AGE_YEARS_MAX, AGE_YEARS_MIN, age_at

__all__ = ["AGE_YEARS_MIN", "AGE_YEARS_MAX", "implausible_age", "unusable_birth_date_note", "is_age_note"]

_UNUSABLE = f"the birth date gives an age outside {AGE_YEARS_MIN} to {AGE_YEARS_MAX} years at the time of the results"


def implausible_age(birth_date: date | None, as_of: datetime | None) -> float | None:
    """The age from ``birth_date`` at ``as_of`` when it is outside the bounds above; None when it is
    inside them, or when either date is not known (then no age is derived)."""
    if birth_date is None or as_of is None:
        return None
    age = age_at(birth_date, as_of)
    return None if AGE_YEARS_MIN <= age <= AGE_YEARS_MAX else age


def unusable_birth_date_note() -> str:
    """The FHIR import's note for a birth date left out (it names no date: the record's, not ours)."""
    return f"Patient: {_UNUSABLE}; age not recorded (correct the birth date in the record)"


def is_age_note(note: str) -> bool:
    """True for :func:`unusable_birth_date_note` (the CDS cards show it, as they show conflicts)."""
    return _UNUSABLE in note
