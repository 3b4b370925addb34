"""A realistic CDS Hooks 2.0 patient-view request, generated (stdlib only, deterministic).

What an EHR sends for a patient with hyperleukocytosis: the Patient, a searchset Bundle of 22
laboratory Observations (WBC, blasts, haemoglobin and platelets at three times; potassium,
phosphate, urate, creatinine and LDH at two), and empty searchset Bundles for the Condition and
MedicationRequest prefetch keys. Observations carry what US Core lab results usually carry (meta
profile, category, LOINC code with display, subject, effective and issued times, UCUM quantity,
reference range, interpretation). Invented data: no real patient.

A busy EHR sends a different patient every time, so ``patient_view_request(patient=n)`` gives
patient ``n`` of a deterministic cohort: its own patient id, Observation ids, Bundle entry URLs,
birth date, collection times and values (each value within 1 % of the base patient's, so every
patient gets the same kind of answer and the same cards). The load benchmark cycles through
thousands of them: a memo that happened to remember one patient's strings, times or values between
calls would show up as a difference between this and the single-patient request, never as speed.
``patient_view_request()`` (no ``patient``) is the base patient, unchanged.

``python -m benchmarks.service_peers.request > request.json`` prints it.
"""

from __future__ import annotations

import datetime as dt
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
                 time: str, flag: str | None, *, patient_id: str = PATIENT_ID, issued: str | None = None,
                 prefix: str = "") -> dict:
    q = {"system": "http://unitsofmeasure.org", "code": unit, "unit": unit}
    obs = {"resourceType": "Observation", "id": f"{prefix}lab-{n:03d}",
           "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"]},
           "status": "final",
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                     "code": "laboratory", "display": "Laboratory"}]}],
           "code": {"coding": [{"system": "http://loinc.org", "code": loinc, "display": display}], "text": display},
           "subject": {"reference": f"Patient/{patient_id}"},
           "effectiveDateTime": time, "issued": issued or time.replace(":00Z", ":00.000Z"),
           "valueQuantity": {"value": value, **q},
           "referenceRange": [{"low": {"value": low, **q}, "high": {"value": high, **q}}]}
    if flag:
        obs["interpretation"] = [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": flag}]}]
    return obs


def _searchset(resources: list[dict], first: int = 1) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"urn:uuid:{uuid.UUID(int=first + i)}", "resource": r}
                      for i, r in enumerate(resources)]}


def _jitter(value: float, patient: int, k: int) -> float:
    """``value`` moved by at most 1 %, one decimal finer than given: patient ``patient``'s result ``k``."""
    step = (patient * 7919 + k * 104729) % 201 - 100  # -100 .. 100, spread over patients and results
    decimals = len(repr(float(value)).split(".")[1].rstrip("0")) + 1
    return round(value * (1 + step / 10_000), decimals)


def _cohort_times(patient: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Three collection times 6 h apart and their report times (+35 min), distinct per patient."""
    start = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=7 * patient, seconds=patient % 60)
    times = [start + dt.timedelta(hours=6 * i) for i in range(3)]
    text = tuple(t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times)
    issued = tuple((t + dt.timedelta(minutes=35)).strftime("%Y-%m-%dT%H:%M:%S.000Z") for t in times)
    return text, issued


def patient_view_request(patient: int | None = None) -> dict:
    """The base patient (``patient=None``), or patient ``patient`` (>= 0) of the benchmark cohort."""
    if patient is None:
        pid, prefix, times, issued, birth = PATIENT_ID, "", _TIMES, (None,) * 3, "1968-04-12"
    else:
        pid, prefix = f"bench-{patient}", f"p{patient}-"
        times, issued = _cohort_times(patient)
        birth = (dt.date(1940, 1, 1) + dt.timedelta(days=(patient * 389) % 18_000)).isoformat()
    observations = []
    for loinc, display, unit, values, low, high, flag in _LABS:
        n = len(values)
        for i, value in enumerate(values):
            k = len(observations) + 1
            v = value if patient is None else _jitter(value, patient, k)
            observations.append(_observation(k, loinc, display, unit, v, low, high, times[3 - n + i],
                                             flag if i == n - 1 else None, patient_id=pid,
                                             issued=issued[3 - n + i], prefix=prefix))
    first = 1 if patient is None else 1 + 100 * (patient + 1)
    return {"hook": "patient-view", "hookInstance": str(uuid.UUID(int=42)),
            "context": {"userId": "Practitioner/bench", "patientId": pid},
            "prefetch": {"patient": {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": birth},
                         "labs": _searchset(observations, first), "conditions": _searchset([]),
                         "meds": _searchset([])}}


def cohort(patients: int) -> list[dict]:
    """The first ``patients`` patients of the benchmark cohort."""
    return [patient_view_request(n) for n in range(patients)]


if __name__ == "__main__":
    print(json.dumps(patient_view_request(), separators=(",", ":")))
