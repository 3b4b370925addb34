"""Which notes of an import speak of the patient's record itself and travel with the findings.

A result the import could not use, two results that disagree at the same time, a birth date that
gives no person's age: each leaves something not assessed that the record seems to hold, so every
surface shows such a note beside the findings (every CDS card; the top of the page), not among the
other warnings. One definition, read by each surface.
"""

from __future__ import annotations

from leukos.interop.age import is_age_note
from leukos.interop.conflicts import NOT_ASSESSED_MARK, is_conflict_note
from leukos.interop.unusable import is_unusable_note

__all__ = ["shown_with_findings", "not_assessed"]


def shown_with_findings(note: str) -> bool:
    """True for a note about a result, or the birth date, that the record holds but could not be used."""
    return is_conflict_note(note) or is_unusable_note(note) or is_age_note(note)


def not_assessed(notes: list[str] | tuple[str, ...]) -> list[str]:
    """The names of the results that the notes leave out entirely (the latest result conflicts or
    cannot be used), in order, once each: what a summary can name."""
    names: list[str] = []
    for note in notes:
        if (is_conflict_note(note) or is_unusable_note(note)) and f" {NOT_ASSESSED_MARK}" in note:
            name = note.split(": ", 1)[0]
            if name not in names:
                names.append(name)
    return names
