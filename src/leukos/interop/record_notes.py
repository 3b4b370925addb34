"""Which notes of an import speak of the patient's record itself and travel with the findings.

A result the import could not use, two results that disagree at the same time, a birth date that
gives no person's age: each leaves something not assessed that the record seems to hold, so every
surface shows such a note beside the findings (every CDS card; the top of the page), not among the
other warnings. One definition, read by each surface.
"""

from __future__ import annotations

from leukos.interop.age import is_age_note
from leukos.interop.conflicts import is_conflict_note
from leukos.interop.unusable import is_unusable_note

__all__ = ["shown_with_findings"]


def shown_with_findings(note: str) -> bool:
    """True for a note about a result, or the birth date, that the record holds but could not be used."""
    return is_conflict_note(note) or is_unusable_note(note) or is_age_note(note)
