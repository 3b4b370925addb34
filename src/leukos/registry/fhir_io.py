"""FHIR R4 for the registry: a patient's course out as a Bundle, lab results in from a Bundle.

Export: Patient (pseudonym only; no MRN), one Procedure per leukapheresis (performedPeriod, device,
access, run parameters in the note), one Observation per lab result (LOINC of the analyte, UCUM
unit; a procedure's counts point to it with ``partOf``), one AdverseEvent per event (R4 severity
mild/moderate/severe for the WAA scale; a CTCAE grade as text). Every resource is validated with
``fhir.resources`` (R4B models, wire-compatible with R4) before the Bundle is returned.

No SNOMED CT code for therapeutic leukocytapheresis is in the knowledge base, so Procedure.code is
text only rather than a guessed code.

Import: the Bundle must be about the registered patient (:func:`check_about_patient`, the same rule
as a CDS call's, :mod:`leukos.interop.patient_ref`): a Patient resource with that patient's
recorded FHIR id, and every Observation, Condition and MedicationRequest naming it in ``subject``.
A patient without a recorded FHIR id cannot be checked, so a Bundle is refused until the id is
recorded. Then the existing importer (:func:`leukos.interop.fhir.case_from_fhir`) reads the Bundle; each
lab value becomes a :class:`LabIn` whose ``source_ref`` is its Observation id (or a digest of
analyte, time and value when the Observation has no id), so importing the same Bundle twice adds
nothing the second time. The importer's notes (statuses ignored, codes not used, ...) are returned
with the result; a value with a comparator (``>5``) is a bound, which the registry (exact values
only) cannot hold, so it is left out with a note rather than stored as if exact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

from leukos.errors import ErrorDetail, FhirInputError
from leukos.knowledge import KnowledgeBase
from leukos.registry.inputs import LabIn

__all__ = ["export_bundle", "labs_from_bundle", "check_about_patient", "check_case_about_patient",
           "NotThisPatientError"]

_NS = uuid.UUID("0b3f5f4e-6f1e-4a53-9d67-1c2e3f4a5b6c")
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
PSEUDONYM_SYSTEM = "urn:leukos:registry:pseudonym"


def _iso(t: Any) -> str:
    if isinstance(t, str):
        return t
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _urn(*parts: Any) -> str:
    return f"urn:uuid:{uuid.uuid5(_NS, '/'.join(str(p) for p in parts))}"


def export_bundle(timeline: dict[str, Any], kb: KnowledgeBase | None = None) -> dict[str, Any]:
    """A FHIR R4 ``collection`` Bundle of the course in ``timeline`` (:meth:`Registry.timeline`)."""
    from leukos.knowledge import load_knowledge

    kb = kb or load_knowledge()
    p = timeline["patient"]
    pid = _urn("patient", p["pseudonym"])
    entries: list[dict[str, Any]] = []
    patient: dict[str, Any] = {"resourceType": "Patient", "id": str(uuid.UUID(pid[9:])),
                               "identifier": [{"system": PSEUDONYM_SYSTEM, "value": p["pseudonym"]}]}
    if p.get("sex"):
        patient["gender"] = p["sex"]
    entries.append({"fullUrl": pid, "resource": patient})
    subject = {"reference": pid}
    devices = kb.table("apheresis")["devices"]
    from leukos.registry.inputs import vocabulary

    access = vocabulary(kb, "access")
    ac = vocabulary(kb, "anticoagulant")
    ae_types = vocabulary(kb, "adverse_event_type")
    proc_urls: dict[int, str] = {}
    for x in timeline["procedures"]:
        url = _urn("procedure", p["pseudonym"], x["id"])
        proc_urls[x["id"]] = url
        parts = [f"Whole blood processed {x['volume_processed_l']:g} L", f"run time {x['run_time_min']:.0f} min",
                 f"anticoagulant {ac.get(x['anticoagulant'], x['anticoagulant'])}"]
        if x.get("inlet_ac_ratio"):
            parts.append(f"inlet:AC {x['inlet_ac_ratio']:g}:1")
        if x.get("ac_volume_ml"):
            parts.append(f"anticoagulant volume {x['ac_volume_ml']:g} mL")
        if x.get("calcium_given_mmol"):
            parts.append(f"calcium {x['calcium_given_mmol']:g} mmol ({x.get('calcium_route') or 'route not recorded'})")
        if x.get("product_volume_ml"):
            parts.append(f"product volume {x['product_volume_ml']:g} mL")
        if x.get("interrupted"):
            parts.append("interrupted" + (f": {x['interruptions']}" if x.get("interruptions") else ""))
        proc = {"resourceType": "Procedure", "id": url[9:], "status": "completed",
                "code": {"text": "Therapeutic leukocytapheresis (white cell depletion)"}, "subject": subject,
                "performedPeriod": {"start": _iso(x["started_at"]), "end": _iso(x["ended_at"])},
                "performer": [{"actor": {"display": x["recorded_by"]}}],
                "bodySite": [{"text": f"Vascular access: {access.get(x['access'], x['access'])}"}],
                "usedCode": [{"text": devices.get(x["device"], {}).get("label", x["device"])
                              + (f", protocol {x['protocol']}" if x.get("protocol") else "")}],
                "note": [{"text": "; ".join(parts) + "."}]}
        entries.append({"fullUrl": url, "resource": proc})
        for i, a in enumerate(x["adverse_events"]):
            aurl = _urn("ae", p["pseudonym"], x["id"], i)
            sev = ({"coding": [{"system": SEVERITY, "code": a["severity"]}], "text": f"{a['severity']} (WAA)"}
                   if a["scale"] == "WAA" else {"text": f"CTCAE grade {a['severity']}"})
            ae = {"resourceType": "AdverseEvent", "id": aurl[9:], "actuality": "actual", "subject": subject,
                  "event": {"text": ae_types.get(a["type"], a["type"])}, "severity": sev, "date": _iso(x["started_at"]),
                  "suspectEntity": [{"instance": {"reference": url}}]}
            entries.append({"fullUrl": aurl, "resource": ae})
    for r in timeline["labs"]:
        a = kb.analyte(r["analyte"])
        ourl = _urn("obs", p["pseudonym"], r["id"])
        code = {"text": a.label}
        if a.loinc:
            code["coding"] = [{"system": LOINC, "code": a.loinc[0], "display": a.label}]
        obs = {"resourceType": "Observation", "id": ourl[9:], "status": "final",
               "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                         "code": "laboratory"}]}],
               "code": code, "subject": subject, "effectiveDateTime": _iso(r["taken_at"]),
               "valueQuantity": {"value": r["value"], "unit": r["unit"], "system": UCUM, "code": r["unit"]}}
        if r.get("procedure_id") in proc_urls:
            obs["partOf"] = [{"reference": proc_urls[r["procedure_id"]]}]
            obs["note"] = [{"text": {"pre": "before the session", "post": "after the session",
                                     "during": "during the session"}.get(r.get("role") or "", "")}]
        entries.append({"fullUrl": ourl, "resource": obs})
    bundle = {"resourceType": "Bundle", "type": "collection", "timestamp": _iso(dt.datetime.now(dt.UTC)),
              "entry": entries}
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(bundle)  # a bug (not user input) if this fails
    return bundle


class NotThisPatientError(FhirInputError):
    """FHIR input that is not (or cannot be confirmed to be) about the registered patient (HTTP 422)."""

    default_title = "The FHIR input is not about this registered patient: nothing stored"


def check_about_patient(data: Any, patient: dict[str, Any], *, where: str = "body") -> None:
    """Raise :class:`NotThisPatientError` unless every resource of ``data`` (a FHIR resource or Bundle)
    is about ``patient`` (:meth:`Registry.get_patient`): the rule of :mod:`leukos.interop.patient_ref`
    against the patient's recorded ``fhir_patient_id``. Without a recorded id nothing links the
    Bundle to this patient, so it is refused with the fix (record the id first)."""
    from leukos.interop.patient_ref import Wording, check_resources_patient

    pseudonym, fhir_id = patient["pseudonym"], patient.get("fhir_patient_id")
    if not fhir_id:
        raise NotThisPatientError(ErrorDetail(
            "fhir_patient_id", None,
            f"the FHIR Patient id of {pseudonym} recorded in the registry, so that the FHIR input can be checked "
            "to be about this patient",
            f"record the patient's FHIR Patient id first (command line: leukos patient update {pseudonym} --fhir-id ID; "
            f"REST: PATCH /api/patients/{pseudonym} with fhir_patient_id and the version you read), then send the "
            "FHIR input again"))
    wording = Wording(
        expected_id=f"the FHIR Patient id recorded for {pseudonym} ({fhir_id})",
        expected_ref="{ref} (the FHIR Patient id recorded for " + pseudonym + ")",
        fix_patient=f"send {pseudonym}'s own Bundle only, or check that {pseudonym} is the right patient",
        fix_subject=f"send {pseudonym}'s resources only: this one is another patient's")
    problems: list[ErrorDetail] = []
    check_resources_patient(where, data, fhir_id, require_subject=True, problems=problems, wording=wording)
    if problems:
        raise NotThisPatientError(problems[:20])


def check_case_about_patient(data: Any, patient: dict[str, Any]) -> None:
    """A case to be assessed or planned for ``patient``: when it is FHIR (a Bundle or a resource),
    :func:`check_about_patient`. A case in the leukos format names no patient, so there is nothing
    to compare."""
    if isinstance(data, dict) and data.get("resourceType") is not None:
        check_about_patient(data, patient)


def labs_from_bundle(bundle: Any, kb: KnowledgeBase, patient: dict[str, Any]) -> tuple[list[LabIn], list[str]]:
    """Lab results of a FHIR Bundle (through the existing importer) as registry inputs, with notes.

    ``patient`` (:meth:`Registry.get_patient`) is whom the results are for: the Bundle must be about
    them (:func:`check_about_patient`)."""
    from leukos.interop.fhir import case_from_fhir

    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirInputError(ErrorDetail("body.resourceType", bundle.get("resourceType") if isinstance(bundle, dict) else None,
                                         "a FHIR R4 Bundle", "send a Bundle of Observations"))
    check_about_patient(bundle, patient)
    case = case_from_fhir(bundle, kb)
    labs: list[LabIn] = []
    notes: list[str] = list(case.import_notes)  # what the importer skipped or read from text, said as it said it
    for analyte, series in case.labs.items():
        for lv in series:
            if lv.time is None:
                notes.append(f"{lv.source.removeprefix('fhir:')}: no effective time; not imported")
                continue
            if lv.comparator:  # '>5': a bound, not a result; the registry stores exact values only
                notes.append(f"{lv.source.removeprefix('fhir:')}: {lv.describe()} is a bound, not an exact value; "
                             "not imported (the registry stores exact results: record the exact value if the lab "
                             "gives one)")
                continue
            t = lv.time if lv.time.tzinfo else lv.time.replace(tzinfo=dt.UTC)
            ref = lv.source.removeprefix("fhir:")
            if not ref.startswith("Observation/"):
                ref = "digest:" + hashlib.sha256(f"{analyte}|{t.isoformat()}|{lv.value!r}".encode()).hexdigest()[:32]
            labs.append(LabIn(analyte=analyte, value=lv.value, unit=lv.unit, taken_at=t, source="fhir", source_ref=ref))
    return labs, notes
