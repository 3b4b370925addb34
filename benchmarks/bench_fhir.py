"""Benchmark: FHIR R4 Bundle -> Case, per 50-Observation Bundle, against baselines of the same run.

Builds one invented Bundle (1 Patient, 50 Observations over three draws with the codes a
hyperleukocytosis work-up sends, 3 Conditions, 1 MedicationRequest), then reports the median
CPU time (``time.process_time``: the work done on one core, less disturbed by other
processes sharing the machine than wall time) per Bundle of:

* ``json.loads`` of the text (the floor: parsing only);
* ``Bundle.model_validate`` with fhir.resources.R4B (plain full validation, no mapping);
* ``case_from_fhir`` validating every read resource in full (no element reuse);
* ``load_case_text`` -> ``case_from_fhir`` as shipped (JSON parse + lean R4 validation of plain
  Observations/Patients, R4B validation of the rest with reuse of repeated elements + mapping +
  unit conversion), with the cross-request element cache emptied before each run.

Goal (issue 2, Performance): under 10 ms per 50-Observation Bundle on one core.
Run: ``.venv/bin/python benchmarks/bench_fhir.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"
LAB = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]
PAT = {"reference": "Patient/p1"}
PANEL = [  # (LOINC, display, value at first draw, UCUM, reference low, high)
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", 180, "10*3/uL", 4, 11),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", 8.1, "g/dL", 13.5, 17.5),
    ("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", 24, "%", 40, 52),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", 35, "10*3/uL", 150, 400),
    ("709-6", "Blasts/100 leukocytes in Blood by Manual count", 82, "%", None, None),
    ("770-8", "Neutrophils/100 leukocytes in Blood by Automated count", 6, "%", 40, 75),
    ("736-9", "Lymphocytes/100 leukocytes in Blood by Automated count", 5, "%", 20, 45),
    ("5905-5", "Monocytes/100 leukocytes in Blood by Automated count", 7, "%", 2, 10),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", 5.2, "mmol/L", 3.5, 5.1),
    ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma", 4.9, "mg/dL", 2.5, 4.5),
    ("3084-1", "Urate [Mass/volume] in Serum or Plasma", 8.8, "mg/dL", 3.5, 7.2),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", 8.7, "mg/dL", 8.6, 10.2),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", 1.3, "mg/dL", 0.7, 1.3),
    ("2532-0", "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma", 1900, "U/L", 125, 250),
    ("3255-7", "Fibrinogen [Mass/volume] in Platelet poor plasma by Coagulation assay", 290, "mg/dL", 200, 400),
    ("48065-7", "Fibrin D-dimer FEU [Mass/volume] in Platelet poor plasma", 1.6, "ug/mL{FEU}", None, 0.5),
    ("6301-6", "INR in Platelet poor plasma by Coagulation assay", 1.2, "{INR}", None, None),
]


def build_bundle(n_obs: int = 50, n_unused: int = 0) -> dict:
    entries = [{"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1", "gender": "female",
                                                        "birthDate": "1970-01-01"}}]
    for k in range(n_obs):
        code, display, value, unit, low, high = PANEL[k % len(PANEL)]
        draw = k // len(PANEL)
        q = {"value": round(value * (1 + 0.1 * draw), 2), "unit": unit, "system": UCUM, "code": unit}
        r = {"resourceType": "Observation", "id": f"o{k}", "status": "final", "category": LAB,
             "code": {"coding": [{"system": LOINC, "code": code, "display": display}]}, "subject": PAT,
             "effectiveDateTime": f"2026-03-01T0{2 + 3 * draw}:00:00Z", "valueQuantity": q}
        rr = {}
        if low is not None:
            rr["low"] = {"value": low, "unit": unit, "system": UCUM, "code": unit}
        if high is not None:
            rr["high"] = {"value": high, "unit": unit, "system": UCUM, "code": unit}
        if rr:
            r["referenceRange"] = [rr]
        entries.append({"fullUrl": f"urn:uuid:o{k}", "resource": r})
    for k in range(n_unused):  # Observations leukos does not read (an albumin series, say)
        entries.append({"fullUrl": f"urn:uuid:u{k}", "resource": {
            "resourceType": "Observation", "id": f"u{k}", "status": "final", "category": LAB, "subject": PAT,
            "code": {"coding": [{"system": LOINC, "code": "1751-7", "display": "Albumin [Mass/volume] in Serum or Plasma"}]},
            "effectiveDateTime": "2026-03-01T08:00:00Z",
            "valueQuantity": {"value": 3.0 + k / 100, "unit": "g/dL", "system": UCUM, "code": "g/dL"}}})
    for cid, code in (("c1", "91861009"), ("c2", "161941007"), ("c3", "25064002")):
        entries.append({"resource": {"resourceType": "Condition", "id": cid, "subject": PAT,
                                     "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]}}})
    entries.append({"resource": {"resourceType": "MedicationRequest", "id": "m1", "status": "active",
                                 "intent": "order", "subject": PAT,
                                 "medicationCodeableConcept": {"text": "Hydroxyurea 500 mg capsule"}}})
    return {"resourceType": "Bundle", "type": "collection", "timestamp": "2026-03-01T09:00:00Z", "entry": entries}


def median_ms(fn, repeat: int) -> float:
    for _ in range(max(3, repeat // 20)):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()

    from fhir.resources.R4B.bundle import Bundle

    from leukos.interop.case_format import load_case_text
    from leukos.interop.fhir import case_from_fhir
    from leukos.knowledge import load_knowledge

    kb = load_knowledge()
    text = json.dumps(build_bundle(50))
    n_obs = sum(e["resource"]["resourceType"] == "Observation" for e in json.loads(text)["entry"])
    case = load_case_text(text, kb)  # warm the unit and code caches; check it maps
    assert case.value("wbc") is not None and len(case.series("wbc")) == 3

    t_json = median_ms(lambda: json.loads(text), args.repeat)
    t_r4b = median_ms(lambda: Bundle.model_validate(json.loads(text)), args.repeat)
    t_full = median_ms(lambda: case_from_fhir(json.loads(text), kb, _reuse_validated=False), args.repeat)
    from leukos.interop import fhir as fhir_module

    def shipped_cold(t: str):
        fhir_module._SHARED_ELEMENTS.clear()  # as for a Bundle unlike any before (no cross-request reuse)
        return load_case_text(t, kb)

    t_ship = median_ms(lambda: shipped_cold(text), args.repeat)
    text_more = json.dumps(build_bundle(50, n_unused=150))
    t_more_r4b = median_ms(lambda: Bundle.model_validate(json.loads(text_more)), max(20, args.repeat // 4))
    t_more = median_ms(lambda: shipped_cold(text_more), max(20, args.repeat // 4))

    print(f"Bundle: {n_obs} Observations, {len(text) / 1024:.1f} KiB JSON; median CPU time of {args.repeat} runs, one process")
    print(f"{'':46s}{'ms/Bundle':>10s}{'x json.loads':>14s}{'x R4B Bundle':>14s}")
    for label, t in (("json.loads (floor)", t_json),
                     ("R4B Bundle.model_validate (baseline)", t_r4b),
                     ("case_from_fhir, every resource in full", t_full),
                     ("load_case_text -> case_from_fhir (shipped)", t_ship)):
        print(f"{label:46s}{t:10.2f}{t / t_json:14.1f}{t / t_r4b:14.2f}")
    print(f"{'same + 150 Observations not read: R4B Bundle':46s}{t_more_r4b:10.2f}{t_more_r4b / t_json:14.1f}"
          f"{t_more_r4b / t_r4b:14.2f}")
    print(f"{'same + 150 Observations not read: shipped':46s}{t_more:10.2f}{t_more / t_json:14.1f}{t_more / t_r4b:14.2f}")
    print(f"goal < 10 ms per 50-Observation Bundle: {'met' if t_ship < 10 else 'NOT met'} ({t_ship:.2f} ms)")


if __name__ == "__main__":
    main()
