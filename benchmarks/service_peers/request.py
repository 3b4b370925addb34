"""A realistic CDS Hooks 2.0 patient-view request, generated (stdlib only, deterministic).

What an EHR sends for a patient with hyperleukocytosis: the Patient, a searchset Bundle of 22
laboratory Observations (WBC, blasts, haemoglobin and platelets at three times; potassium,
phosphate, urate, creatinine and LDH at two), and empty searchset Bundles for the Condition and
MedicationRequest prefetch keys. Observations carry what US Core lab results usually carry (meta
profile, category, LOINC code with display, subject, effective and issued times, UCUM quantity,
reference range, interpretation). Invented data: no real patient.

``python -m benchmarks.service_peers.request > request.json`` prints it.
"""

from __future__ import annotations

import json
import uuid

PATIENT_ID = "bench-patient-1"
_TIMES = ("2026-03-01T06:00:00Z", "2026-03-01T12:00:00Z", "2026-03-01T18:00:00Z")
# (LOINC, display, UCUM unit, values per time, reference low, high, interpretation of the last)
_LABS = [
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", (182, 224, 260), 4.0, 11.0, "HH"),
    ("709-6", "Blasts/100 leukocytes in Blood by Manual count", "%", (80, 82, 85), 0, 0.5, "H"),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", (7.9, 7.7, 7.5), 12.0, 16.0, "L"),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", (31, 29, 27), 150, 400, "LL"),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", (5.6, 6.1), 3.5, 5.1, "H"),
    ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma", "mg/dL", (4.9, 5.3), 2.5, 4.5, "H"),
    ("3084-1", "Urate [Mass/volume] in Serum or Plasma", "mg/dL", (8.8, 9.4), 3.5, 7.2, "H"),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", (1.2, 1.4), 0.6, 1.1, "H"),
    ("2532-0", "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma", "U/L", (1380, 1450),
     135, 225, "H"),
]


def _observation(n: int, loinc: str, display: str, unit: str, value: float, low: float, high: float,
                 time: str, flag: str | None) -> dict:
    q = {"system": "http://unitsofmeasure.org", "code": unit, "unit": unit}
    obs = {"resourceType": "Observation", "id": f"lab-{n:03d}",
           "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"]},
           "status": "final",
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                     "code": "laboratory", "display": "Laboratory"}]}],
           "code": {"coding": [{"system": "http://loinc.org", "code": loinc, "display": display}], "text": display},
           "subject": {"reference": f"Patient/{PATIENT_ID}"},
           "effectiveDateTime": time, "issued": time.replace(":00Z", ":00.000Z"),
           "valueQuantity": {"value": value, **q},
           "referenceRange": [{"low": {"value": low, **q}, "high": {"value": high, **q}}]}
    if flag:
        obs["interpretation"] = [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": flag}]}]
    return obs


def _searchset(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"urn:uuid:{uuid.UUID(int=i + 1)}", "resource": r} for i, r in enumerate(resources)]}


def patient_view_request() -> dict:
    observations = []
    for loinc, display, unit, values, low, high, flag in _LABS:
        times = _TIMES[-len(values):]
        for i, (value, time) in enumerate(zip(values, times, strict=True)):
            observations.append(_observation(len(observations) + 1, loinc, display, unit, value, low, high, time,
                                             flag if i == len(values) - 1 else None))
    return {"hook": "patient-view", "hookInstance": str(uuid.UUID(int=42)),
            "context": {"userId": "Practitioner/bench", "patientId": PATIENT_ID},
            "prefetch": {"patient": {"resourceType": "Patient", "id": PATIENT_ID, "gender": "female",
                                     "birthDate": "1968-04-12"},
                         "labs": _searchset(observations), "conditions": _searchset([]), "meds": _searchset([])}}


if __name__ == "__main__":
    print(json.dumps(patient_view_request(), separators=(",", ":")))
