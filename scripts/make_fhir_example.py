"""Generate examples/fhir-bundle-aml.json: an invented AML-with-leukostasis Bundle (no real data)."""
import json

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
LAB = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]
VITAL = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}]
PAT = {"reference": "Patient/pat-aml-01"}
entries = [{"fullUrl": "urn:uuid:7f9a1c62-0000-4000-8000-000000000001", "resource": {
    "resourceType": "Patient", "id": "pat-aml-01", "gender": "male", "birthDate": "1968-05-14"}}]
n = 0


def obs(code, display, value, unit, time, *, low=None, high=None, comparator=None, status="final", cat=LAB, ucum=None):
    global n
    n += 1
    q = {"value": value, "unit": unit, "system": UCUM, "code": ucum or unit}
    if comparator:
        q["comparator"] = comparator
    r = {"resourceType": "Observation", "id": f"obs-{n:02d}", "status": status, "category": cat,
         "code": {"coding": [{"system": LOINC, "code": code, "display": display}]}, "subject": PAT,
         "effectiveDateTime": time, "valueQuantity": q}
    if low is not None or high is not None:
        rr = {}
        if low is not None:
            rr["low"] = {"value": low, "unit": unit, "system": UCUM, "code": ucum or unit}
        if high is not None:
            rr["high"] = {"value": high, "unit": unit, "system": UCUM, "code": ucum or unit}
        r["referenceRange"] = [rr]
    entries.append({"fullUrl": f"urn:uuid:7f9a1c62-0000-4000-8000-0000000001{n:02d}", "resource": r})
    return r


T0, T1, T2 = "2026-03-01T02:10:00Z", "2026-03-01T06:00:00Z", "2026-03-01T08:00:00Z"
WBC = "Leukocytes [#/volume] in Blood by Automated count"
obs("6690-2", WBC, 142, "10*3/uL", T0, low=4, high=11)
obs("6690-2", WBC, 196, "10*3/uL", T1, low=4, high=11)
obs("6690-2", WBC, 263, "10*3/uL", T2, low=4, high=11)
obs("6690-2", WBC, 26.3, "10*3/uL", T2, status="entered-in-error")  # decimal slip, retracted by the lab
obs("709-6", "Blasts/100 leukocytes in Blood by Manual count", 84, "%", T2)
obs("5905-5", "Monocytes/100 leukocytes in Blood by Automated count", 6, "%", T2)
obs("770-8", "Neutrophils/100 leukocytes in Blood by Automated count", 4, "%", T2)
obs("736-9", "Lymphocytes/100 leukocytes in Blood by Automated count", 5, "%", T2)
obs("718-7", "Hemoglobin [Mass/volume] in Blood", 7.4, "g/dL", T2, low=13.5, high=17.5)
obs("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", 22, "%", T2)
obs("777-3", "Platelets [#/volume] in Blood by Automated count", 31, "10*3/uL", T2, low=150, high=400)
obs("2823-3", "Potassium [Moles/volume] in Serum or Plasma", 5.6, "mmol/L", T2, low=3.5, high=5.1)
obs("2777-1", "Phosphate [Mass/volume] in Serum or Plasma", 5.2, "mg/dL", T2, low=2.5, high=4.5)
obs("3084-1", "Urate [Mass/volume] in Serum or Plasma", 9.1, "mg/dL", T2, low=3.5, high=7.2)
obs("17861-6", "Calcium [Mass/volume] in Serum or Plasma", 8.6, "mg/dL", T2)
obs("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", 1.4, "mg/dL", T1, low=0.7, high=1.3)
obs("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", 1.6, "mg/dL", T2, low=0.7, high=1.3)
obs("2532-0", "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma", 4000, "U/L", T2,
    comparator=">", high=250)  # above the analyser's linear range
obs("3255-7", "Fibrinogen [Mass/volume] in Platelet poor plasma by Coagulation assay", 310, "mg/dL", T2, low=200, high=400)
obs("48065-7", "Fibrin D-dimer FEU [Mass/volume] in Platelet poor plasma", 1.8, "ug/mL{FEU}", T2, high=0.5)
obs("5902-2", "Prothrombin time (PT) in Platelet poor plasma by Coagulation assay", 14.1, "s", T2, low=11, high=13.5)
obs("6301-6", "INR in Platelet poor plasma by Coagulation assay", 1.2, "{INR}", T2)
obs("2703-7", "Oxygen [Partial pressure] in Arterial blood", 56, "mm[Hg]", T2)
obs("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", 95, "%", T2, cat=VITAL)
obs("29463-7", "Body weight", 82, "kg", T0, cat=VITAL)
obs("8302-2", "Body height", 178, "cm", T0, cat=VITAL)
# a lab leukos does not use: skipped with a note
obs("1751-7", "Albumin [Mass/volume] in Serum or Plasma", 3.6, "g/dL", T2)
pml = {"resourceType": "Observation", "id": "obs-pml-rara", "status": "final", "category": LAB,
       "code": {"coding": [{"system": LOINC, "code": "77031-3",
                            "display": "t(15;17)(q24.1;q21.1)(PML,RARA) fusion transcript in Blood or Tissue by FISH"}]},
       "subject": PAT, "effectiveDateTime": T2,
       "valueCodeableConcept": {"coding": [{"system": SCT, "code": "260385009", "display": "Negative"}]}}
entries.append({"fullUrl": "urn:uuid:7f9a1c62-0000-4000-8000-000000000200", "resource": pml})


def cond(cid, coding, text, onset):
    return {"fullUrl": f"urn:uuid:7f9a1c62-0000-4000-8000-0000000003{len(entries):02d}", "resource": {
        "resourceType": "Condition", "id": cid,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "code": {"coding": coding, "text": text}, "subject": PAT, "onsetDateTime": onset}}


entries.append(cond("cond-aml", [{"system": SCT, "code": "91861009", "display": "Acute myeloid leukemia, disease"},
                                 {"system": ICD, "code": "C92.00", "display": "Acute myeloblastic leukemia, not having achieved remission"}],
                    "Acute myeloid leukaemia", "2026-02-27"))
entries.append(cond("cond-dyspnea-rest", [{"system": SCT, "code": "161941007", "display": "Dyspnea at rest (finding)"}],
                    "Dyspnoea at rest", "2026-03-01T01:30:00Z"))
entries.append(cond("cond-headache", [{"system": SCT, "code": "25064002", "display": "Headache"},
                                      {"system": ICD, "code": "R51.9", "display": "Headache, unspecified"}],
                    "Headache", "2026-02-28"))
entries.append({"fullUrl": "urn:uuid:7f9a1c62-0000-4000-8000-000000000400", "resource": {
    "resourceType": "MedicationRequest", "id": "medreq-hydroxyurea", "status": "active", "intent": "order",
    "medicationCodeableConcept": {"text": "Hydroxyurea 500 mg oral capsule"}, "subject": PAT,
    "authoredOn": "2026-03-01T08:30:00Z",
    "dosageInstruction": [{"text": "2 g orally every 12 hours"}]}})
bundle = {"resourceType": "Bundle", "id": "demo-fhir-aml-leukostasis", "type": "collection",
          "timestamp": "2026-03-01T08:45:00Z", "entry": entries}
print(json.dumps(bundle, indent=1))
