"""Build CDS Hooks requests (prefetch as an EHR sends it) from the bundled example cases.

Each example case is read with the real case-format reader; its labs become FHIR R4 Observations
coded with the first LOINC code the knowledge base maps to the analyte (labs.toml, from codes.md),
in the canonical UCUM unit; symptoms become Conditions with their SNOMED CT codes (symptoms.toml);
the known diagnosis a Condition with the codes.md SNOMED CT / ICD-10-CM codes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from leukos.interop.case_format import load_case_text
from leukos.knowledge import load_knowledge

from .conftest import EXAMPLES

PATIENT_ID = "example-patient-1"
# codes.md "Diagnoses" table (status V)
DIAGNOSIS_CODES = {
    "AML": [("http://snomed.info/sct", "91861009", "Acute myeloid leukemia"),
            ("http://hl7.org/fhir/sid/icd-10-cm", "C92.00", "Acute myeloblastic leukemia, not having achieved remission")],
}


def resources_for(example: str, patient_id: str = PATIENT_ID) -> dict[str, Any]:
    kb = load_knowledge()
    case = load_case_text((EXAMPLES / example).read_bytes(), kb, name=example)
    as_of = case.as_of or dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
    patient: dict[str, Any] = {"resourceType": "Patient", "id": patient_id}
    if case.patient.sex is not None:
        patient["gender"] = case.patient.sex.value
    if case.age_years is not None:
        patient["birthDate"] = f"{as_of.year - int(case.age_years) - 1}-{as_of.month:02d}-{as_of.day:02d}"
    observations = []
    for name, series in case.labs.items():
        loinc = kb.analytes[name].loinc
        if not loinc:
            continue
        for i, lv in enumerate(series):
            t = lv.time or as_of
            obs = {"resourceType": "Observation", "id": f"{name.replace('_', '-')}-{i}", "status": "final",
                   "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                             "code": "laboratory"}]}],
                   "code": {"coding": [{"system": "http://loinc.org", "code": loinc[0]}], "text": kb.analytes[name].label},
                   "subject": {"reference": f"Patient/{patient_id}"},
                   "effectiveDateTime": t.isoformat().replace("+00:00", "Z"),
                   "valueQuantity": {"value": lv.value, "unit": lv.unit, "system": "http://unitsofmeasure.org",
                                     "code": lv.unit}}
            observations.append(obs)
    conditions = []
    for term in case.symptoms or ():
        snomed = kb.symptoms[term].snomed
        coding = [{"system": "http://snomed.info/sct", "code": snomed[0]}] if snomed else []
        conditions.append({"resourceType": "Condition", "id": f"sym-{term.replace('_', '-')}",
                           "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                          "code": "active"}]},
                           "code": {"coding": coding, "text": kb.symptoms[term].label},
                           "subject": {"reference": f"Patient/{patient_id}"}})
    dx = case.diagnosis.value if case.diagnosis else None
    if dx in DIAGNOSIS_CODES:
        conditions.append({"resourceType": "Condition", "id": "dx-1",
                           "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                          "code": "active"}]},
                           "code": {"coding": [{"system": s, "code": c, "display": d} for s, c, d in DIAGNOSIS_CODES[dx]]},
                           "subject": {"reference": f"Patient/{patient_id}"}})
    return {"patient": patient, "observations": observations, "conditions": conditions}


def _searchset(resources: list[dict[str, Any]], stable: int | None = None) -> dict[str, Any]:
    """``stable``: fullUrls numbered from ``stable * 1000`` instead of random (reproducible requests)."""
    def url(i: int) -> str:
        return f"urn:uuid:{uuid.uuid4() if stable is None else uuid.UUID(int=stable * 1000 + i)}"
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": url(i), "resource": r} for i, r in enumerate(resources)]}


def patient_view_request(example: str, *, hook_instance: str = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
                         stable_urls: bool = False) -> dict:
    res = resources_for(example)
    stable = (lambda n: n) if stable_urls else (lambda n: None)
    return {"hook": "patient-view", "hookInstance": hook_instance,
            "context": {"userId": "Practitioner/example", "patientId": PATIENT_ID},
            "prefetch": {"patient": res["patient"], "labs": _searchset(res["observations"], stable(1)),
                         "conditions": _searchset(res["conditions"], stable(2)), "meds": _searchset([], stable(3))}}


DRAFTS = {
    "rbc": {"resourceType": "ServiceRequest", "id": "draft-1", "status": "draft", "intent": "order",
            "code": {"text": "Transfuse 2 units red blood cells"}, "subject": {"reference": f"Patient/{PATIENT_ID}"}},
    "gcsf": {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "order",
             "medicationCodeableConcept": {"text": "Filgrastim 300 micrograms SC"},
             "subject": {"reference": f"Patient/{PATIENT_ID}"}},
    "leukapheresis": {"resourceType": "ServiceRequest", "id": "draft-1", "status": "draft", "intent": "order",
                      "code": {"text": "Therapeutic leukapheresis"}, "subject": {"reference": f"Patient/{PATIENT_ID}"}},
    "paracetamol": {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "order",
                    "medicationCodeableConcept": {"text": "Paracetamol 1 g PO"},
                    "subject": {"reference": f"Patient/{PATIENT_ID}"}},
}


def order_select_request(example: str, order: str, *, stable_urls: bool = False) -> dict:
    req = patient_view_request(example, hook_instance="0f4c1c7e-2a58-4d8f-9f0e-5a1b7c9d3e21", stable_urls=stable_urls)
    draft = DRAFTS[order]
    req["hook"] = "order-select"
    req["context"].update({"selections": [f"{draft['resourceType']}/{draft['id']}"],
                           "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                           "entry": [{"resource": draft}]}})
    return req
