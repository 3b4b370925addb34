"""Every resource a CDS call uses must be about the patient on screen (``context.patientId``).

CDS Hooks 2.0 puts the patient in ``context.patientId``; the cards are shown next to that patient's
chart. A prefetch (or a ``fhirServer`` answer) about anyone else would put another person's labs on
this patient's screen, so the call is refused with the reason (HTTP 422), never carded:

- the prefetch ``Patient`` must have ``id == context.patientId``;
- every Observation, Condition and MedicationRequest used must name that patient in ``subject``
  (``Patient/<id>`` or an absolute URL ending in ``/Patient/<id>``); one without a subject cannot be
  confirmed and is refused too;
- draft orders of order-select that name a subject must name the same patient.

The rule itself is :func:`leukos.interop.patient_ref.check_resources_patient` (the registry uses it
too, for a Bundle stored on a registered patient).

``context.patientId`` itself must be a FHIR id (``[A-Za-z0-9\\-.]{1,64}``, FHIR R4 §2.24.0.1 "id"):
it is put into ``fhirServer`` URLs, so anything else is refused before a URL is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leukos.errors import ErrorDetail, FhirInputError
from leukos.interop.patient_ref import FHIR_ID, SUBJECT_TYPES, check_resources_patient

__all__ = ["WrongPatientError", "FHIR_ID", "SUBJECT_TYPES", "check_patient_id", "check_prefetch_patient",
           "check_resources_patient"]


class WrongPatientError(FhirInputError):
    """Resources about another patient than ``context.patientId`` (HTTP 422)."""

    default_title = "Resources in the request are not about the patient in context.patientId: refused"


def check_patient_id(value: Any) -> str:
    """``context.patientId`` as a validated FHIR id, else a :class:`FhirInputError`."""
    if not isinstance(value, str) or not value:
        raise FhirInputError(ErrorDetail(field="context.patientId", value=value if isinstance(value, str) else None,
                                         expected="the FHIR id of the patient",
                                         fix="send context.patientId as the hook definition requires"))
    # "." and ".." match the FHIR id pattern but are path segments in a URL: Patient/.. reads the
    # server's base (and Patient/. a search of every patient) with the EHR's token. No server issues them.
    if not FHIR_ID.fullmatch(value) or not value.strip("."):
        raise FhirInputError(ErrorDetail(
            field="context.patientId", value="(not shown)",
            expected="a FHIR id: 1-64 characters A-Z, a-z, 0-9, '-' or '.', not dots alone",
            fix="send the logical id of the Patient resource (not a URL, path or identifier)"))
    return value


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
