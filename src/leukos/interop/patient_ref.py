"""Is a FHIR resource about a given patient? The one definition of that rule.

Used by the CDS service (every prefetched resource must be about ``context.patientId``,
:mod:`leukos.service.cds.patient_check`) and by the follow-up registry (a Bundle stored on a
registered patient must be about that patient's recorded FHIR id, :mod:`leukos.registry.fhir_io`):

- a ``Patient`` resource must have ``id ==`` the patient's id;
- every Observation, Condition and MedicationRequest must name that patient in ``subject``
  (``Patient/<id>`` or an absolute URL ending in ``/Patient/<id>``); with ``require_subject`` one
  without a subject cannot be confirmed and is a problem too;
- other resources that name a subject must name the same patient.

Who "the patient" is differs (the CDS call's context, a registry record), so the wording of the
problems is given by the caller (:class:`Wording`); the rule is the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from leukos.errors import ErrorDetail

__all__ = ["FHIR_ID", "SUBJECT_TYPES", "Wording", "CDS_WORDING", "about", "resources", "check_resources_patient"]

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR R4 §2.24.0.1 "id"
SUBJECT_TYPES = frozenset({"Observation", "Condition", "MedicationRequest"})


@dataclass(frozen=True)
class Wording:
    """How a problem names the expected patient: ``expected_id`` for a Patient resource's id,
    ``expected_ref`` (with ``{ref}``, e.g. ``Patient/abc``) for a subject, and the fixes."""

    expected_id: str
    expected_ref: str
    fix_patient: str
    fix_subject: str


CDS_WORDING = Wording(expected_id="the id in context.patientId", expected_ref="{ref} (context.patientId)",
                      fix_patient="send this patient's own resources only",
                      fix_subject="send this patient's resources only; the EHR's prefetch or search returned another "
                                  "patient's")


def about(ref: Any, patient_id: str) -> bool:
    """Whether the reference ``ref`` names ``Patient/<patient_id>`` (relative or absolute)."""
    return isinstance(ref, str) and (ref == f"Patient/{patient_id}" or ref.endswith(f"/Patient/{patient_id}"))


def resources(value: Any) -> Iterable[tuple[int | None, dict[str, Any]]]:
    """(entry index, resource) of a Bundle, or (None, the resource) of a resource."""
    if not isinstance(value, dict):
        return ()
    if value.get("resourceType") == "Bundle":
        entries = value.get("entry")
        return [(i, e["resource"]) for i, e in enumerate(entries if isinstance(entries, list) else ())
                if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    return ((None, value),)


def _path(i: int | None) -> str:
    """Where a resource is in its value (built only for a problem)."""
    return "" if i is None else f".entry[{i}].resource"


def check_resources_patient(where: str, value: Any, patient_id: str, *, require_subject: bool,
                            problems: list[ErrorDetail], wording: Wording = CDS_WORDING) -> None:
    """Add a problem for each resource of ``value`` (a resource or Bundle) about another patient."""
    own = f"Patient/{patient_id}"  # the usual reference: one of the forms `about` accepts
    for i, res in resources(value):
        rtype = res.get("resourceType")
        if rtype == "Patient":
            if res.get("id") != patient_id:
                problems.append(ErrorDetail(
                    f"{where}{_path(i)}.id", res.get("id") if isinstance(res.get("id"), str) else None,
                    wording.expected_id, wording.fix_patient))
            continue
        subject = res.get("subject")
        ref = subject.get("reference") if isinstance(subject, dict) else None
        if ref == own:
            continue
        if ref is None and not (require_subject and rtype in SUBJECT_TYPES):
            continue  # nothing to compare (other resource types, or drafts without a subject)
        if ref is None:
            problems.append(ErrorDetail(
                f"{where}{_path(i)}.subject", None, f"a reference to {own}",
                f"a {rtype} without a subject cannot be confirmed to be this patient's: add subject"))
        elif not about(ref, patient_id):
            problems.append(ErrorDetail(
                f"{where}{_path(i)}.subject.reference", ref, wording.expected_ref.format(ref=own), wording.fix_subject))

