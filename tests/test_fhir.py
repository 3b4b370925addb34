"""FHIR R4 Bundle input (issue 2 part 3): mapping tables citing codes.md / interop-and-stack.md,
the status, comparator and series rules, clear errors naming the element path, and a parser
that never crashes on arbitrary input."""

from __future__ import annotations

import copy
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leukos.domain.case import Diagnosis, GeneticResult, Immunophenotype, Sex
from leukos.errors import FhirInputError, ImplausibleValueError, LeukosUserError, UnitError
from leukos.interop.case_format import load_case_text
from leukos.interop.fhir import case_from_fhir
from leukos.knowledge import load_knowledge

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "fhir-bundle-aml.json"
REFERENCE_CODES = Path(__file__).resolve().parent / "data" / "reference_codes.txt"

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


# --- builders ---------------------------------------------------------------------------------


def obs(code: str | None, value: Any = None, unit: str | None = None, *, id: str = "o1", status: str = "final",
        time: str | None = "2026-03-01T08:00:00Z", text: str | None = None, ucum: bool = True, **extra) -> dict:
    r: dict[str, Any] = {"resourceType": "Observation", "id": id, "status": status, "code": {}}
    if code:
        r["code"]["coding"] = [{"system": LOINC, "code": code}]
    if text:
        r["code"]["text"] = text
    if time:
        r["effectiveDateTime"] = time
    if value is not None:
        q: dict[str, Any] = {"value": value}
        if unit is not None:
            q.update({"unit": unit, "system": UCUM, "code": unit} if ucum else {"unit": unit})
        r["valueQuantity"] = q
    r.update(extra)
    return r


def cond(code: str | None, system: str = SCT, *, id: str = "c1", text: str | None = None,
         clinical: str | None = "active", verification: str | None = None) -> dict:
    r: dict[str, Any] = {"resourceType": "Condition", "id": id, "subject": {"reference": "Patient/p1"}, "code": {}}
    if code:
        r["code"]["coding"] = [{"system": system, "code": code}]
    if text:
        r["code"]["text"] = text
    if clinical:
        r["clinicalStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": clinical}]}
    if verification:
        r["verificationStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                               "code": verification}]}
    return r


def medreq(text: str, *, status: str = "active", id: str = "m1") -> dict:
    return {"resourceType": "MedicationRequest", "id": id, "status": status, "intent": "order",
            "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"text": text}}


def bundle(*resources_: dict, type: str = "collection", **top) -> dict:
    b = {"resourceType": "Bundle", "type": type, "entry": [{"resource": r} for r in resources_]}
    b.update(top)
    return b


def messages(exc: LeukosUserError) -> str:
    return "\n".join(str(d) for d in exc.details)


# --- Observations: LOINC -> analyte, units to canonical ----------------------------------------

OBSERVATION_ROWS = [
    # (LOINC, value, UCUM unit, analyte, canonical value, where the expectation comes from)
    ("6690-2", 180, "10*3/uL", "wbc", 180.0, "codes.md 6690-2; interop-and-stack.md §2 WBC Observation, 10*3/uL = 10*9/L"),
    ("26464-8", 250000, "/uL", "wbc", 250.0, "codes.md 26464-8; 250,000/uL = 250 x10^9/L (case-format.md)"),
    ("804-5", 95, "10*9/L", "wbc", 95.0, "codes.md 804-5 manual count"),
    ("709-6", 80, "%", "blasts_pct", 80.0, "codes.md 709-6 Blasts/100 leukocytes"),
    ("26446-5", 60, "%", "blasts_pct", 60.0, "codes.md 26446-5"),
    ("718-7", 77, "g/L", "hemoglobin", 7.7, "codes.md 718-7; 77 g/L = 7.7 g/dL"),
    ("4544-3", 23, "%", "hematocrit", 23.0, "codes.md 4544-3"),
    ("777-3", 28, "10*3/uL", "platelets", 28.0, "codes.md 777-3"),
    ("2823-3", 5.1, "mmol/L", "potassium", 5.1, "codes.md 2823-3"),
    ("3084-1", 8, "mg/dL", "uric_acid", 8 * 59.48, "codes.md 3084-1; clinical.md §10 uric acid mg/dL x59.48"),
    ("14933-6", 480, "umol/L", "uric_acid", 480.0, "codes.md SI alternate 14933-6"),
    ("2160-0", 1.0, "mg/dL", "creatinine", 88.4, "codes.md 2160-0; clinical.md §10 creatinine x88.4"),
    ("17861-6", 10, "mg/dL", "calcium", 2.495, "codes.md 17861-6; clinical.md §10 calcium x0.2495"),
    ("2777-1", 3.1, "mg/dL", "phosphate", 3.1 * 0.3229, "codes.md 2777-1; clinical.md §10 phosphate x0.3229"),
    ("2532-0", 950, "U/L", "ldh", 950.0, "codes.md 2532-0"),
    ("3255-7", 250, "mg/dL", "fibrinogen", 2.5, "codes.md 3255-7; 250 mg/dL = 2.5 g/L"),
    ("48065-7", 2, "ug/mL{FEU}", "d_dimer", 2.0, "codes.md 48065-7 FEU; 1 ug/mL = 1 mg/L"),
    ("5902-2", 14.5, "s", "pt_seconds", 14.5, "codes.md 5902-2"),
    ("6301-6", 1.2, "{INR}", "inr", 1.2, "codes.md 6301-6"),
    ("2703-7", 58, "mm[Hg]", "pao2", 58.0, "codes.md 2703-7"),
    ("59408-5", 97, "%", "spo2", 97.0, "codes.md 59408-5 pulse oximetry"),
    ("1994-3", 1.15, "mmol/L", "ionized_calcium", 1.15, "codes.md 1994-3"),
    ("742-7", 19.57, "10*3/uL", "monocytes_abs", 19.57, "codes.md 742-7 Monocytes [#/volume] automated"),
    ("751-8", 13.2, "10*3/uL", "neutrophils_abs", 13.2, "codes.md 751-8 ANC automated"),
    ("26499-4", 25200, "/uL", "neutrophils_abs", 25.2, "codes.md 26499-4; 25,200/uL = 25.2 x10^9/L"),
    ("731-0", 150, "10*3/uL", "lymphocytes_abs", 150.0, "codes.md 731-0"),
    ("711-2", 1.6, "10*9/L", "eosinophils_abs", 1.6, "codes.md 711-2"),
    ("704-7", 3.4, "10*3/uL", "basophils_abs", 3.4, "codes.md 704-7"),
]


@pytest.mark.parametrize("loinc,value,unit,analyte,expected,source", OBSERVATION_ROWS,
                         ids=[r[0] for r in OBSERVATION_ROWS])
def test_observation_maps_loinc_to_canonical_value(kb, loinc, value, unit, analyte, expected, source):
    case = case_from_fhir(bundle(obs(loinc, value, unit, id="x")), kb)
    lab = case.lab(analyte)
    assert lab is not None, source
    assert lab.value == pytest.approx(expected, rel=1e-3), source
    assert lab.unit == kb.analyte(analyte).unit
    assert lab.source == "fhir:Observation/x"
    assert case.source == "fhir"


@pytest.mark.parametrize("unit", ["K/uL", "x10E3/uL", "10^3/uL", "thou/uL", "G/L"])
def test_unit_text_without_ucum_code_goes_through_the_alias_table(kb, unit):
    """interop-and-stack.md §2: 'unit with a missing code'; case-format.md alias list."""
    case = case_from_fhir(bundle(obs("6690-2", 150, unit, ucum=False)), kb)
    assert case.value("wbc") == 150


def test_non_ucum_system_uses_the_human_unit(kb):
    o = obs("6690-2", 150)
    o["valueQuantity"].update({"unit": "K/uL", "system": "http://lab.example/units", "code": "KPERUL"})
    assert case_from_fhir(bundle(o), kb).value("wbc") == 150


# --- statuses, comparator, series, reference range, time ----------------------------------------


@pytest.mark.parametrize("status,used", [
    ("final", True), ("amended", True), ("corrected", True), ("preliminary", True),
    ("entered-in-error", False), ("cancelled", False), ("registered", False), ("unknown", False),
])
def test_observation_status(kb, status, used):
    """issue 2 part 3: entered-in-error ignored; interop-and-stack.md §2 status handling."""
    case = case_from_fhir(bundle(obs("6690-2", 180, "10*3/uL", status=status)), kb)
    assert (case.value("wbc") == 180) is used
    if not used:
        assert any("Observation/o1" in n and status in n for n in case.import_notes)


def test_entered_in_error_does_not_replace_the_latest_value(kb):
    b = bundle(obs("6690-2", 263, "10*3/uL", id="good", time="2026-03-01T08:00:00Z"),
               obs("6690-2", 26.3, "10*3/uL", id="slip", time="2026-03-01T09:00:00Z", status="entered-in-error"))
    case = case_from_fhir(b, kb)
    assert case.value("wbc") == 263 and len(case.series("wbc")) == 1


def test_comparator_is_kept(kb):
    """issue 2 part 3: valueQuantity.comparator honoured ('>' above the linear range, interop §2)."""
    o = obs("2532-0", 4000, "U/L")
    o["valueQuantity"]["comparator"] = ">"
    lab = case_from_fhir(bundle(o), kb).lab("ldh")
    assert lab.comparator == ">" and lab.value == 4000 and lab.describe() == ">4000 U/L"


def test_latest_wins_and_the_series_is_kept_in_time_order(kb):
    b = bundle(obs("6690-2", 196, "10*3/uL", id="b", time="2026-03-01T06:00:00Z"),
               obs("6690-2", 263, "10*3/uL", id="c", time="2026-03-01T08:00:00Z"),
               obs("6690-2", 142, "10*3/uL", id="a", time="2026-03-01T02:00:00Z"),
               obs("6690-2", 100, "10*3/uL", id="untimed", time=None))
    case = case_from_fhir(b, kb)
    assert [v.value for v in case.series("wbc")] == [100, 142, 196, 263]  # untimed first
    assert case.value("wbc") == 263 and case.lab("wbc").source == "fhir:Observation/c"
    assert case.as_of.isoformat() == "2026-03-01T08:00:00+00:00"  # no Bundle.timestamp: latest Observation


@pytest.mark.parametrize("element,value,expected", [
    ("effectiveDateTime", "2026-03-01T07:00:00+01:00", "2026-03-01T06:00:00+00:00"),
    ("effectivePeriod", {"start": "2026-03-01T05:00:00Z"}, "2026-03-01T05:00:00+00:00"),
    ("effectiveInstant", "2026-03-01T04:00:00Z", "2026-03-01T04:00:00+00:00"),
    ("issued", "2026-03-01T03:00:00Z", "2026-03-01T03:00:00+00:00"),
    ("effectiveDateTime", "2026-03-01", "2026-03-01T00:00:00+00:00"),
])
def test_observation_time_sources(kb, element, value, expected):
    o = obs("6690-2", 100, "10*9/L", time=None, **{element: value})
    assert case_from_fhir(bundle(o), kb).lab("wbc").time.isoformat() == expected


def test_bundle_timestamp_is_as_of(kb):
    case = case_from_fhir(bundle(obs("6690-2", 100, "10*9/L"), timestamp="2026-03-02T00:00:00Z"), kb)
    assert case.as_of.isoformat() == "2026-03-02T00:00:00+00:00"


def test_reference_range_is_converted_to_the_canonical_unit(kb):
    o = obs("3084-1", 9.1, "mg/dL", referenceRange=[{"low": {"value": 3.5, "system": UCUM, "code": "mg/dL"},
                                                     "high": {"value": 7.2, "system": UCUM, "code": "mg/dL"}}])
    lab = case_from_fhir(bundle(o), kb).lab("uric_acid")
    assert lab.reference_low == pytest.approx(3.5 * 59.48, rel=1e-3)  # clinical.md §10
    assert lab.reference_high == pytest.approx(7.2 * 59.48, rel=1e-3)


def test_data_absent_reason_is_not_recorded(kb):
    o = obs("6690-2", None, dataAbsentReason={"coding": [{"code": "error"}]})
    case = case_from_fhir(bundle(o), kb)
    assert case.lab("wbc") is None and any("dataAbsentReason" in n for n in case.import_notes)


def test_unknown_loinc_is_skipped_with_a_note_not_an_error(kb):
    case = case_from_fhir(bundle(obs("1751-7", 3.6, "g/dL")), kb)
    assert not case.labs and any("1751-7" in n for n in case.import_notes)


def test_text_fallback_is_noted(kb):
    """codes.md 'Text fallbacks': match code.text / display case-insensitively and record it."""
    case = case_from_fhir(bundle(obs(None, 120, "10*9/L", text="White Cell Count")), kb)
    assert case.value("wbc") == 120
    assert any("from the text" in n and "wbc" in n for n in case.import_notes)


@pytest.mark.parametrize("loinc,value,unit,attr,expected", [
    ("29463-7", 70, "kg", "weight_kg", 70.0),           # codes.md 29463-7 Body weight
    ("29463-7", 154.324, "[lb_av]", "weight_kg", 70.0),  # UCUM avoirdupois pound = 0.45359237 kg
    ("8302-2", 165, "cm", "height_cm", 165.0),          # codes.md 8302-2 Body height
    ("8302-2", 65, "[in_i]", "height_cm", 165.1),        # UCUM international inch = 2.54 cm
])
def test_body_weight_and_height(kb, loinc, value, unit, attr, expected):
    case = case_from_fhir(bundle(obs(loinc, value, unit)), kb)
    assert getattr(case.patient, attr) == pytest.approx(expected, abs=0.01)


# --- genetics -----------------------------------------------------------------------------------

POS = {"valueCodeableConcept": {"coding": [{"system": SCT, "code": "10828004"}]}}
NEG = {"valueCodeableConcept": {"coding": [{"system": SCT, "code": "260385009"}]}}


@pytest.mark.parametrize("loinc,extra,gene,expected", [
    ("21821-4", POS, "bcr_abl1", "positive"),                                      # codes.md 21821-4, SNOMED Positive
    ("21821-4", NEG, "bcr_abl1", "negative"),                                      # SNOMED 260385009 Negative
    ("51867-0", {"valueString": "Not detected"}, "bcr_abl1", "negative"),          # FISH, text
    ("21821-4", {"interpretation": [{"coding": [{"code": "POS"}]}]}, "bcr_abl1", "positive"),
    ("77031-3", {"valueCodeableConcept": {"text": "Detected"}}, "pml_rara", "positive"),
    ("77031-3", NEG, "pml_rara", "negative"),
    ("78217-7", POS, "pml_rara", "positive"),            # RARA rearranged: APL gate
    ("78217-7", NEG, "pml_rara", "unknown"),             # positive_only: cryptic PML::RARA not excluded
    ("60588-1", NEG, "pml_rara", "unknown"),             # bcr2 only: other transcripts not excluded
    ("46434-7", {"valueQuantity": {"value": 12.5, "unit": "%", "system": UCUM, "code": "%"}}, "bcr_abl1", "positive"),
    ("46434-7", {"valueQuantity": {"value": 0, "unit": "%", "system": UCUM, "code": "%"}}, "bcr_abl1", "unknown"),
    ("72215-7", {"valueQuantity": {"value": 0.01, "comparator": "<", "unit": "%", "system": UCUM, "code": "%"}},
     "pml_rara", "unknown"),
    ("50195-7", {"valueQuantity": {"value": -1.3, "unit": "{log}", "system": UCUM, "code": "{log}"}}, "bcr_abl1",
     "positive"),
])
def test_genetics(kb, loinc, extra, gene, expected):
    case = case_from_fhir(bundle(obs(loinc, **extra)), kb)
    assert case.findings.gene(gene) is GeneticResult(expected)


def test_positive_wins_over_negative_with_a_note(kb):
    b = bundle(obs("77031-3", id="g1", **NEG), obs("77031-3", id="g2", **POS))
    case = case_from_fhir(b, kb)
    assert case.findings.gene("pml_rara") is GeneticResult.POSITIVE
    assert any("positive is used" in n for n in case.import_notes)


# --- Patient --------------------------------------------------------------------------------------


@pytest.mark.parametrize("gender,sex", [("female", Sex.FEMALE), ("male", Sex.MALE), ("other", None), ("unknown", None)])
def test_patient_gender(kb, gender, sex):
    p = {"resourceType": "Patient", "id": "p1", "gender": gender, "birthDate": "1972-03-01"}
    case = case_from_fhir(bundle(p, obs("6690-2", 100, "10*9/L"), timestamp="2026-03-01T00:00:00Z"), kb)
    assert case.patient.sex is sex
    assert case.age_years == pytest.approx(54, abs=0.01)
    if sex is None:
        assert any("gender" in n for n in case.import_notes)


# --- Conditions -------------------------------------------------------------------------------------

CONDITION_ROWS = [
    # (system, code, attribute path, expected; each code and its concept from codes.md, status V)
    (SCT, "91861009", "diagnosis", Diagnosis.AML),
    (ICD, "C92.00", "diagnosis", Diagnosis.AML),
    (SCT, "110004001", "diagnosis", Diagnosis.APL),
    (ICD, "C92.40", "diagnosis", Diagnosis.APL),
    (ICD, "C93.00", "immunophenotype", Immunophenotype.MONOCYTIC),  # C93.0 inclusion AML M5
    (SCT, "91857003", "diagnosis", Diagnosis.ALL),
    (SCT, "277571004", "immunophenotype", Immunophenotype.B_LYMPHOBLASTIC),
    (SCT, "92818009", "diagnosis", Diagnosis.CML),
    (ICD, "C92.10", "diagnosis", Diagnosis.CML),
    (SCT, "92814006", "diagnosis", Diagnosis.CLL),
    (ICD, "C91.10", "diagnosis", Diagnosis.CLL),
    (SCT, "188734009", "diagnosis", Diagnosis.CNL),
    (ICD, "D47.1", "diagnosis", Diagnosis.OTHER_MPN),  # includes CNL but broader: not read as CNL
    (SCT, "127225006", "diagnosis", Diagnosis.CMML),
    (ICD, "C93.10", "diagnosis", Diagnosis.CMML),
    (SCT, "56478004", "diagnosis", Diagnosis.LEUKEMOID_REACTIVE),
    (ICD, "D72.823", "diagnosis", Diagnosis.LEUKEMOID_REACTIVE),
    (SCT, "161941007", "symptoms", ("dyspnea_rest",)),
    (SCT, "25064002", "symptoms", ("headache",)),
    (ICD, "R51.9", "symptoms", ("headache",)),
    (ICD, "J96.01", "symptoms", ("respiratory_failure",)),
    (SCT, "6273006", "symptoms", ("priapism",)),
    (SCT, "16294009", "splenomegaly", True),
    (ICD, "R16.0", "hepatomegaly", True),
    (ICD, "R16.2", "splenomegaly", True),  # hepatosplenomegaly
    (SCT, "30746006", "lymphadenopathy", True),
    (SCT, "186431008", "organism", "Clostridioides difficile"),
    (ICD, "A41.9", "infection", True),
    (SCT, "254637007", "tumour_site", "lung"),
    (ICD, "C64.9", "tumour_site", "kidney"),
    (ICD, "C22.0", "tumour_site", "liver"),
    (ICD, "C67.9", "tumour_site", "bladder"),
    (SCT, "363354003", "tumour_site", "cervix"),
    (SCT, "77386006", "pregnant", True),
    (ICD, "O99.119", "pregnant", True),  # codes.md: any O00-O9A code implies pregnancy
]


def _attr(case, name):
    f = case.findings
    return {
        "diagnosis": lambda: case.diagnosis,
        "immunophenotype": lambda: f.immunophenotype,
        "symptoms": lambda: case.symptoms,
        "splenomegaly": lambda: f.splenomegaly,
        "hepatomegaly": lambda: f.hepatomegaly,
        "lymphadenopathy": lambda: f.lymphadenopathy,
        "organism": lambda: f.infection.organism,
        "infection": lambda: f.infection.present,
        "tumour_site": lambda: f.solid_tumor.site if f.solid_tumor.present else None,
        "pregnant": lambda: case.patient.pregnant,
    }[name]()


@pytest.mark.parametrize("system,code,attr,expected", CONDITION_ROWS, ids=[r[1] for r in CONDITION_ROWS])
def test_condition_codes(kb, system, code, attr, expected):
    case = case_from_fhir(bundle(cond(code, system)), kb)
    assert _attr(case, attr) == expected


def test_every_code_in_the_tables_is_a_listed_reference_code(kb):
    listed = {ln.strip() for ln in REFERENCE_CODES.read_text("utf-8").splitlines()
              if ln.strip() and not ln.startswith("#")}
    assert len(listed) > 200
    data = tomllib.loads(resources.files("leukos.knowledge").joinpath("data", "fhir_codes.toml").read_text("utf-8"))
    codes = [c for row in data["diagnosis"] + data["finding"] + data["recognised"] for c in row["snomed"] + row["icd10cm"]]
    codes += data["remission"]["icd10cm"] + [row["loinc"] for row in data["genetics"] + data["body"]]
    assert len(codes) > 50
    missing = [c for c in codes if c not in listed]
    assert not missing
    citations = {c for section in ("diagnosis", "finding", "genetics", "body", "medication", "recognised")
                 for row in data[section] for c in row.get("citations", []) + row.get("rule_citations", [])}
    assert citations and citations <= set(kb.citations)


def test_no_symptom_condition_means_symptoms_not_recorded(kb):
    case = case_from_fhir(bundle(cond("91861009")), kb)
    assert case.symptoms is None  # absence in FHIR is not "no symptoms"


@pytest.mark.parametrize("clinical,verification", [
    ("resolved", None), ("inactive", None), ("remission", None), ("active", "refuted"), ("active", "entered-in-error"),
])
def test_condition_statuses_skipped(kb, clinical, verification):
    case = case_from_fhir(bundle(cond("25064002", clinical=clinical, verification=verification)), kb)
    assert case.symptoms is None and case.import_notes


def test_remission_icd_code_is_skipped(kb):
    case = case_from_fhir(bundle(cond("C92.01", ICD)), kb)
    assert case.diagnosis is None and any("remission" in n for n in case.import_notes)


def test_provisional_diagnosis_is_not_known_except_apl(kb):
    """A provisional AML is not 'known'; a provisional APL is used: suspected APL contraindicates
    leukapheresis (issue 2 part 6)."""
    assert case_from_fhir(bundle(cond("91861009", verification="provisional")), kb).diagnosis is None
    assert case_from_fhir(bundle(cond("110004001", verification="provisional")), kb).diagnosis is Diagnosis.APL


def test_apl_takes_precedence_over_aml(kb):
    case = case_from_fhir(bundle(cond("91861009", id="a"), cond("110004001", id="b")), kb)
    assert case.diagnosis is Diagnosis.APL and any("several diagnoses" in n for n in case.import_notes)


def test_condition_text_fallback_is_noted(kb):
    case = case_from_fhir(bundle(cond(None, text="Shortness of breath at rest")), kb)
    assert case.symptoms == ("dyspnea_rest",)
    assert any("from the text" in n for n in case.import_notes)


# --- MedicationRequest ------------------------------------------------------------------------------


@pytest.mark.parametrize("text,target,term", [
    ("Hydroxyurea 500 mg oral capsule", "treatment", "hydroxyurea"),
    ("Cytarabine 100 mg/m2 IV", "treatment", "chemotherapy"),
    ("Rasburicase 0.2 mg/kg", "treatment", "rasburicase"),
    ("ALLOPURINOL 300 MG TABLET", "treatment", "allopurinol"),
    ("Filgrastim 480 mcg SC", "drugs", "g_csf"),
    ("pegfilgrastim", "drugs", "g_csf"),
    ("Dexamethasone 8 mg", "drugs", "corticosteroids"),
    ("Lithium carbonate 300 mg", "drugs", "lithium"),
    ("Epinephrine 1 mg/mL", "drugs", "epinephrine"),
    ("Tretinoin 10 mg capsule (ATRA)", "drugs", "all_trans_retinoic_acid"),
])
def test_medication_names(kb, text, target, term):
    """Text match (codes.md holds no RxNorm codes); lists in fhir_codes.toml (leukos_operational)."""
    case = case_from_fhir(bundle(medreq(text)), kb)
    assert term in getattr(case.findings, target)


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled", "draft"])
def test_medication_status_not_used(kb, status):
    case = case_from_fhir(bundle(medreq("Hydroxyurea", status=status)), kb)
    assert case.findings.treatment is None


def test_medication_word_boundaries(kb):
    assert case_from_fhir(bundle(medreq("Prednisolone acetate eye drops")), kb).findings.drugs == ("corticosteroids",)
    assert case_from_fhir(bundle(medreq("Heparin 5000 units")), kb).findings.drugs is None


# --- bad input: one error naming every path -------------------------------------------------------


def _raises(kb, data, cls=FhirInputError) -> LeukosUserError:
    with pytest.raises(cls) as info:
        case_from_fhir(data, kb)
    return info.value


def test_a_lone_observation_says_wrap_it_in_a_bundle(kb):
    err = _raises(kb, obs("6690-2", 100, "10*9/L"))
    assert err.details[0].field == "resourceType" and "wrap the Observation in a Bundle" in err.details[0].fix


@pytest.mark.parametrize("data,field", [
    ([], "(document)"),
    ({"resourceType": "Foo"}, "resourceType"),
    ({"resourceType": "Bundle", "type": "document", "entry": []}, "type"),
    ({"resourceType": "Bundle", "type": "collection", "entry": {}}, "entry"),
    ({"resourceType": "Bundle", "type": "collection", "timestamp": "yesterday"}, "timestamp"),
    (bundle({"resourceType": "Foo"}), "entry[0].resource.resourceType"),
    (bundle(obs("6690-2", "abc", "10*9/L")), "entry[0].resource.valueQuantity.value"),
    (bundle(obs("6690-2", 100, "10*9/L", effectiveDateTime="2026-13-01")), "entry[0].resource.effectiveDateTime"),
    (bundle(obs("6690-2", 100, "10*9/L", status="finished")), "entry[0].resource.status"),
    (bundle({"resourceType": "Observation", "status": "final"}), "entry[0].resource.code"),
])
def test_malformed_input_names_the_path(kb, data, field):
    err = _raises(kb, data)
    assert field in [d.field for d in err.details], messages(err)
    assert "Traceback" not in err.message


def test_unknown_unit_names_observation_and_loinc(kb):
    err = _raises(kb, bundle(obs("6690-2", 100, "furlongs", id="w9")), UnitError)
    field = err.details[0].field
    assert field.startswith("entry[0].resource.valueQuantity.code") and "Observation/w9" in field and "6690-2" in field


def test_implausible_value_names_observation_and_loinc(kb):
    err = _raises(kb, bundle(obs("6690-2", 250000, "10*9/L", id="w9")), ImplausibleValueError)
    field = err.details[0].field
    assert field.startswith("entry[0].resource.valueQuantity.value") and "Observation/w9" in field
    assert "/uL" in err.details[0].fix  # the converter's hint: the value looks like cells per microlitre


def test_all_problems_are_reported_at_once(kb):
    err = _raises(kb, bundle(obs("6690-2", 100, "furlongs", id="a"), obs("2823-3", 60, "mmol/L", id="b")))
    assert len(err.details) == 2  # unit and plausibility: mixed kinds -> FhirInputError


def test_two_patients_is_an_error(kb):
    p = {"resourceType": "Patient", "id": "p1"}
    err = _raises(kb, bundle(p, dict(p, id="p2")))
    assert err.details[0].field == "entry" and "exactly one Patient" in err.details[0].expected


def test_a_resource_about_another_patient_is_an_error(kb):
    o = obs("6690-2", 100, "10*9/L", subject={"reference": "Patient/other"})
    err = _raises(kb, bundle({"resourceType": "Patient", "id": "p1"}, o))
    assert err.details[0].field == "entry[1].resource.subject.reference"


def test_patient_values_are_never_echoed(kb):
    p = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Doe-Secret", "given": 7}],
         "birthDate": "1970-02-31", "gender": "female"}
    err = _raises(kb, bundle(p))
    text = json.dumps(err.to_dict()) + err.message
    assert "Doe-Secret" not in text and "1970-02-31" not in text


def test_nested_unknown_element_is_an_error_top_level_is_noted(kb):
    o = obs("6690-2", 100, "10*9/L")
    o["valueQuantity"]["comparater"] = ">"  # misspelt: would silently drop the comparator
    err = _raises(kb, bundle(o))
    assert err.details[0].field == "entry[0].resource.valueQuantity.comparater"
    o = obs("6690-2", 100, "10*9/L", triggeredBy=[{"type": "reflex"}])  # an R5 element
    case = case_from_fhir(bundle(o), kb)
    assert case.value("wbc") == 100 and any("triggeredBy" in n for n in case.import_notes)


def test_missing_unit_on_a_count_is_an_error(kb):
    err = _raises(kb, bundle(obs("6690-2", 100)))
    assert err.details[0].field.startswith("entry[0].resource.valueQuantity.code")


def test_other_resource_types_are_noted_not_read(kb):
    enc = {"resourceType": "Encounter", "id": "e1", "status": "nonsense-not-validated"}
    case = case_from_fhir(bundle(enc, obs("6690-2", 100, "10*9/L")), kb)
    assert case.value("wbc") == 100 and any("Encounter" in n for n in case.import_notes)


@pytest.mark.parametrize("btype", ["collection", "searchset", "transaction"])
def test_supported_bundle_types(kb, btype):
    assert case_from_fhir(bundle(obs("6690-2", 100, "10*9/L"), type=btype), kb).value("wbc") == 100


# --- the example and the case-format dispatch -------------------------------------------------------


def test_example_bundle(kb):
    case = load_case_text(EXAMPLE.read_text("utf-8"), kb)
    assert case.source == "fhir" and case.id == "demo-fhir-aml-leukostasis"
    assert [v.value for v in case.series("wbc")] == [142, 196, 263]  # the entered-in-error 26.3 is ignored
    assert case.lab("ldh").comparator == ">"
    assert case.diagnosis is Diagnosis.AML and case.symptoms == ("dyspnea_rest", "headache")
    assert case.findings.treatment == ("hydroxyurea",)
    assert case.findings.gene("pml_rara") is GeneticResult.NEGATIVE
    assert case.patient.sex is Sex.MALE and case.patient.weight_kg == 82 and case.patient.height_cm == 178
    assert case.lab("platelets").reference_low == 150
    assert len(json.loads(EXAMPLE.read_text())["entry"]) >= 30
    notes = "\n".join(case.import_notes)
    assert "obs-04: status entered-in-error" in notes and "1751-7" in notes


def test_cached_validation_equals_full_validation():
    """The per-Bundle element cache must give exactly what validating every resource in full gives."""
    from fhir.resources.R4B import get_fhir_model_class

    from leukos.interop.fhir import _Validator

    v = _Validator()
    for entry in json.loads(EXAMPLE.read_text())["entry"]:
        res = entry["resource"]
        cls = get_fhir_model_class(res["resourceType"])
        assert v.validate(cls, res) == []
    bad = copy.deepcopy(json.loads(EXAMPLE.read_text())["entry"][2]["resource"])
    bad["category"][0]["coding"][0]["code"] = 5  # wrong type inside a cached element
    errors = v.validate(get_fhir_model_class("Observation"), bad)
    assert errors and errors[0]["loc"][:4] == ("category", 0, "coding", 0)


# --- properties -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_never_crashes(data):
    try:
        case_from_fhir(data)
    except LeukosUserError:
        pass


_EXAMPLE_DATA = json.loads(EXAMPLE.read_text("utf-8"))
_KEYS = ["status", "code", "valueQuantity", "value", "unit", "comparator", "effectiveDateTime", "referenceRange",
         "gender", "birthDate", "clinicalStatus", "coding", "system", "resourceType", "type", "entry", "resource",
         "medicationCodeableConcept", "text", "subject", "reference", "id", "low", "high"]


def _mutate(data: Any, path: list[int], key: str, value: Any) -> Any:
    """Replace (or add) ``key`` in the dict found by walking ``path`` through nested containers."""
    node = data
    for step in path:
        children = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else []
        children = [c for c in children if isinstance(c, (dict, list))]
        if not children:
            break
        node = children[step % len(children)]
    if isinstance(node, dict):
        node[key] = value
    elif isinstance(node, list) and node:
        node[len(path) % len(node)] = value
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 50), max_size=6), st.sampled_from(_KEYS), json_values)
def test_mutated_example_bundle_never_crashes(path, key, value):
    data = _mutate(copy.deepcopy(_EXAMPLE_DATA), path, key, value)
    try:
        case = case_from_fhir(data)
    except LeukosUserError as exc:
        assert exc.details and all(d.field for d in exc.details)
    else:
        assert case.source == "fhir"


def test_unused_observations_are_not_validated_but_a_malformed_code_is():
    """Only what is read is validated: an Observation whose well-formed code leukos does not use is
    skipped (with one summary note); a malformed code is validated and reported, never dropped."""
    case = case_from_fhir(bundle(obs("1751-7", "not-a-number", "g/dL", id="a"), obs("1751-7", 3, "g/dL", id="b")))
    assert any("2 Observation(s)" in n and "LOINC 1751-7 (x2)" in n for n in case.import_notes)
    err = _raises(None, bundle({"resourceType": "Observation", "status": "final", "code": "6690-2"}))
    assert "entry[0].resource.code" in [d.field for d in err.details]


def test_without_a_patient_resource_all_subjects_must_agree(kb):
    a = obs("6690-2", 100, "10*9/L", id="a", subject={"reference": "Patient/x"})
    b = obs("718-7", 9, "g/dL", id="b", subject={"reference": "Patient/y"})
    err = _raises(kb, bundle(a, b))
    assert err.details[0].field == "entry[1].resource.subject.reference"
    c = obs("718-7", 9, "g/dL", id="c", subject={"reference": "Patient/x"})
    assert case_from_fhir(bundle(a, c), kb).value("hemoglobin") == 9


def test_subject_may_reference_the_patient_by_full_url(kb):
    b = bundle({"resourceType": "Patient", "id": "p1"},
               obs("6690-2", 100, "10*9/L", subject={"reference": "urn:uuid:1234"}))
    b["entry"][0]["fullUrl"] = "urn:uuid:1234"
    assert case_from_fhir(b, kb).value("wbc") == 100


def test_abated_condition_without_clinical_status_is_ignored(kb):
    c = cond("25064002", clinical=None)
    c["abatementDateTime"] = "2026-02-01"
    assert case_from_fhir(bundle(c), kb).symptoms is None


# --- third-party R4 Bundles (carebundle: synthetic FHIR R4 transaction Bundles) -------------------

carebundle = pytest.importorskip("carebundle")


@pytest.mark.parametrize("profile", ["healthy", "anaemia", "ckd_stage3"])
def test_carebundle_transaction_bundles_map(kb, profile):
    """Bundles from another generator (US Core-profiled Patient with names and identifiers,
    Encounter, DiagnosticReport, AllergyIntolerance, resources without ids) read without error;
    every mapped LOINC value equals the Observation's value converted (codes.md LOINC table)."""
    data = json.loads(carebundle.to_json(carebundle.generate_bundle(profile=profile, seed=7, sex="F")))
    case = case_from_fhir(data, kb)
    observations = [e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Observation"]
    by_code = {o["code"]["coding"][0]["code"]: o.get("valueQuantity") for o in observations}
    assert case.value("wbc") == by_code["6690-2"]["value"]  # 10*3/uL = 10*9/L
    assert case.value("hemoglobin") == by_code["718-7"]["value"]  # g/dL canonical
    assert case.value("creatinine") == pytest.approx(by_code["2160-0"]["value"] * 88.4, rel=1e-3)  # clinical.md §10
    assert case.patient.weight_kg == by_code["29463-7"]["value"] and case.patient.sex is Sex.FEMALE
    assert case.lab("wbc").source.startswith("fhir:Observation (urn:uuid:")
    notes = "\n".join(case.import_notes)
    assert "Encounter" in notes and "Observation(s) with codes leukos does not use" in notes
    for p in data["entry"][0]["resource"].get("name", []):  # names never reach the notes
        assert all(part not in notes for part in p.get("given", []) + [p.get("family", "")] if part)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.floats(0.05, 0.5))
def test_carebundle_defects_give_user_errors_only(seed, rate):
    """carebundle's injected defects (missing fields, duplicates, unparseable values, unknown code
    systems, timestamps out of order) give a Case or a LeukosUserError naming a path, never a crash."""
    data = json.loads(carebundle.to_json(carebundle.generate_bundle(profile="anaemia", seed=seed % 50)))
    imperfect = carebundle.Imperfection(missing_field=rate, duplicate_entry=rate, out_of_order_timestamp=rate,
                                        unparseable_value=rate, unknown_code_system=rate)
    bad, _ = carebundle.inject_defects(data, imperfect, seed=seed)
    try:
        case_from_fhir(bad)
    except LeukosUserError as exc:
        assert all(d.field.startswith(("entry", "type", "timestamp")) for d in exc.details), messages(exc)


def test_text_fallback_only_without_a_loinc_code(kb):
    """An unknown LOINC code names another test (5821-4 is not in labs.toml; think of a urine
    sediment count shown as 'Leukocytes'): its text must not become the blood white cell count."""
    o = obs("5821-4", 25, "/[HPF]", text="Leukocytes")
    case = case_from_fhir(bundle(o), kb)
    assert case.lab("wbc") is None and any("5821-4" in n for n in case.import_notes)


def test_text_fallback_when_coded_only_in_another_system(kb):
    """Coded only in another system (no LOINC code at all), a result is matched by its text like an
    uncoded one, and with a text leukos does not know it is skipped as unused (both before
    validation and after it)."""
    o = obs(None, 120, "10*9/L", text="White Cell Count")
    o["code"]["coding"] = [{"system": "http://snomed.info/sct", "code": "767002", "display": "White blood cell count"}]
    case = case_from_fhir(bundle(o), kb)
    assert case.value("wbc") == 120
    assert any("from the text" in n and "wbc" in n for n in case.import_notes)
    o["code"]["text"] = o["code"]["coding"][0]["display"] = "Something else"
    case = case_from_fhir(bundle(o), kb)
    assert case.lab("wbc") is None and any("no LOINC code" in n for n in case.import_notes)


def test_recognised_codes_without_a_case_field_say_so(kb):
    case = case_from_fhir(bundle(cond("267036007")), kb)  # codes.md Dyspnea (rest/exertion not stated)
    assert case.symptoms is None
    assert any("dyspnea_rest" in n and "recognised" in n for n in case.import_notes)


def test_fhir_example_assessed_end_to_end(kb):
    """The FHIR example is the AML-with-leukostasis story of examples/01 told in FHIR: the same
    headline findings (WBC 263 > 100, dyspnoea at rest = pulmonary grade 3, laboratory TLS)."""
    from leukos.rules import assess

    a = assess(load_case_text(EXAMPLE.read_text("utf-8"), kb), kb)
    assert a.hyperleukocytosis.present is True
    assert a.leukostasis.grade == 3
    assert a.tls.laboratory is True
    assert a.urgency == "emergent"


def test_validated_elements_naming_the_patient_are_not_kept_between_imports(kb):
    """A Patient outside the lean grammar (address, telecom) goes through the R4B models, which reuse
    validated elements: names, addresses, references must not outlive the import that sent them."""
    from leukos.interop.fhir import _SHARED_ELEMENTS

    patient = {"resourceType": "Patient", "id": "p-keep-1", "gender": "female",
               "name": [{"family": "Keepnot-Family", "given": ["Keepnot"]}],
               "address": [{"line": ["1 Keepnot Street"], "city": "Keepnot-City"}],
               "telecom": [{"system": "phone", "value": "+00-keepnot"}]}
    o = obs("6690-2", 120, "10*9/L", subject={"reference": "Patient/p-keep-1", "display": "Keepnot Display"})
    o["performer"] = [{"reference": "Practitioner/keepnot-doc"}]  # outside the lean grammar
    case = case_from_fhir(bundle(patient, o), kb)
    assert case.value("wbc") == 120 and case.patient.sex is not None
    kept = " ".join(text for _, text in _SHARED_ELEMENTS)
    assert "keepnot" not in kept.lower()
    assert any("6690-2" in text for _, text in _SHARED_ELEMENTS)  # vocabulary is still shared
