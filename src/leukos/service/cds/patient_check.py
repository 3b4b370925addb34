"""Every resource a CDS call uses must be about the patient on screen (``context.patientId``).

CDS Hooks 2.0 puts the patient in ``context.patientId``; the cards are shown next to that patient's
chart. A prefetch (or a ``fhirServer`` answer) about anyone else would put another person's labs on
this patient's screen, so the call is refused with the reason (HTTP 422), never carded:

- the prefetch ``Patient`` must have ``id == context.patientId``;
- every Observation, Condition and MedicationRequest used must name that patient in ``subject``
  (``Patient/<id>`` or an absolute URL ending in ``/Patient/<id>``); one without a subject cannot be
  confirmed and is refused too;
- draft orders of order-select that name a subject must name the same patient.

``context.patientId`` itself must be a FHIR id (``[A-Za-z0-9\\-.]{1,64}``, FHIR R4 §2.24.0.1 "id"):
it is put into ``fhirServer`` URLs, so anything else is refused before a URL is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from leukos.errors import ErrorDetail, FhirInputError

__all__ = ["WrongPatientError", "FHIR_ID", "check_patient_id", "check_prefetch_patient", "check_resources_patient"]

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
SUBJECT_TYPES = frozenset({"Observation", "Condition", "MedicationRequest"})


class WrongPatientError(FhirInputError):
    """Resources about another patient than ``context.patientId`` (HTTP 422)."""

    default_title = "Resources in the request are not about the patient in context.patientId: refused"


def check_patient_id(value: Any) -> str:
    """``context.patientId`` as a validated FHIR id, else a :class:`FhirInputError`."""
    if not isinstance(value, str) or not value:
        raise FhirInputError(ErrorDetail(field="context.patientId", value=value if isinstance(value, str) else None,
                                         expected="the FHIR id of the patient",
                                         fix="send context.patientId as the hook definition requires"))
    if not FHIR_ID.fullmatch(value):
        raise FhirInputError(ErrorDetail(
            field="context.patientId", value="(not shown)",
            expected="a FHIR id: 1-64 characters A-Z, a-z, 0-9, '-' or '.'",
            fix="send the logical id of the Patient resource (not a URL, path or identifier)"))
    return value


def _about(ref: Any, patient_id: str) -> bool:
    return isinstance(ref, str) and (ref == f"Patient/{patient_id}" or ref.endswith(f"/Patient/{patient_id}"))


def _resources(value: Any) -> Iterable[tuple[int | None, dict[str, Any]]]:
    """(entry index, resource) of a Bundle, or (None, the resource) of a resource."""
    if not isinstance(value, dict):
        return ()
    if value.get("resourceType") == "Bundle":
        entries = value.get("entry")
        return [(i, e["resource"]) for i, e in enumerate(entries if isinstance(entries, list) else ())
                if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    return ((None, value),)


def _path(i: int | None) -> str:
    """Where a resource is in its prefetch value (built only for a problem)."""
    return "" if i is None else f".entry[{i}].resource"


def check_resources_patient(where: str, value: Any, patient_id: str, *, require_subject: bool,
                            problems: list[ErrorDetail]) -> None:
    """Add a problem for each resource of ``value`` (a resource or Bundle) about another patient."""
    own = f"Patient/{patient_id}"  # the usual reference: one of the forms _about accepts
    for i, res in _resources(value):
        rtype = res.get("resourceType")
        if rtype == "Patient":
            if res.get("id") != patient_id:
                problems.append(ErrorDetail(
                    f"{where}{_path(i)}.id", res.get("id") if isinstance(res.get("id"), str) else None,
                    "the id in context.patientId", "send this patient's own resources only"))
            continue
        subject = res.get("subject")
        ref = subject.get("reference") if isinstance(subject, dict) else None
        if ref == own:
            continue
        if ref is None and not (require_subject and rtype in SUBJECT_TYPES):
            continue  # nothing to compare (other resource types, or drafts without a subject)
        if ref is None:
            problems.append(ErrorDetail(
                f"{where}{_path(i)}.subject", None, f"a reference to Patient/{patient_id}",
                f"a {rtype} without a subject cannot be confirmed to be this patient's: add subject"))
        elif not _about(ref, patient_id):
            problems.append(ErrorDetail(
                f"{where}{_path(i)}.subject.reference", ref, f"Patient/{patient_id} (context.patientId)",
                "send this patient's resources only; the EHR's prefetch or search returned another patient's"))


def check_prefetch_patient(prefetch: Mapping[str, Any], patient_id: str,
                           context: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`WrongPatientError` if any prefetched resource (or draft order) is another patient's."""
    problems: list[ErrorDetail] = []
    for key, value in prefetch.items():
        check_resources_patient(f"prefetch.{key}", value, patient_id, require_subject=True, problems=problems)
    if context is not None and isinstance(context.get("draftOrders"), dict):
        check_resources_patient("context.draftOrders", context["draftOrders"], patient_id,
                                require_subject=False, problems=problems)
    if problems:
        raise WrongPatientError(problems[:20])
