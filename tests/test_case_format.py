"""The case format (case-format.md): every accepted lab spelling, and a clear error for each kind
of bad input, with nothing partial returned."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leukos.domain.case import Diagnosis, GeneticResult, Sex
from leukos.errors import CaseFormatError, ImplausibleValueError, LeukosUserError, UnitError, UnknownTermError
from leukos.interop.case_format import MAX_CASE_BYTES, case_from_dict, load_case_text


def test_every_lab_form_of_case_format_md():
    case = load_case_text("""
format: leukos-case/1
as_of: 2026-03-01T08:00:00Z
patient: {birth_date: 1972-03-01, sex: female, weight_kg: 70, height_cm: 165}
labs:
  wbc: 250                                   # bare number in the canonical unit
  hemoglobin: {value: 77, unit: g/L}         # value + unit
  platelets: "28 K/uL"                       # "value unit" string
  potassium:                                 # a time series; latest is current
    - {value: 5.1, unit: mmol/L, time: 2026-03-01T06:00:00Z}
    - {value: 4.0, unit: mmol/L, time: 2026-02-28T06:00:00Z}
  ldh: {value: 950, unit: U/L, reference_high: 250}
  d_dimer: {value: 2, unit: ug/mL FEU, comparator: ">"}
symptoms: [dyspnea_rest, headache, headache]
findings: {known_diagnosis: AML, genetics: {pml_rara: negative}}
""")
    assert case.value("wbc") == 250
    assert case.value("hemoglobin") == pytest.approx(7.7)
    assert case.value("platelets") == 28
    assert case.value("potassium") == 5.1 and case.baseline("potassium").value == 4.0
    assert case.lab("ldh").reference_high == 250
    assert case.lab("d_dimer").comparator == ">"
    assert case.symptoms == ("dyspnea_rest", "headache")
    assert case.patient.sex is Sex.FEMALE
    assert case.age_years == pytest.approx(54, abs=0.01)
    assert case.diagnosis is Diagnosis.AML and case.findings.gene("pml_rara") is GeneticResult.NEGATIVE
    assert case.findings.gene("bcr_abl1") is GeneticResult.UNKNOWN


def test_json_and_yaml_give_the_same_case():
    doc = {"patient": {"age_years": 40, "sex": "male"}, "labs": {"wbc": {"value": 120, "unit": "K/uL"}}, "symptoms": []}
    import yaml

    assert load_case_text(json.dumps(doc)) == load_case_text(yaml.safe_dump(doc))


def test_missing_symptoms_are_not_recorded_but_an_empty_list_is_none():
    assert case_from_dict({"labs": {}}).symptoms is None
    assert case_from_dict({"labs": {}, "symptoms": []}).symptoms == ()


def test_null_members_of_a_lab_are_not_recorded_and_the_schema_says_so():
    """Absent or null means not recorded: a lab object's members other than value may be null, the
    reader takes that as absent, and the shipped JSON Schema (the API's documented body) allows it.
    A long fuzz run found the reader taking ``"comparator": null`` while the schema refused it."""
    import jsonschema

    from leukos.interop.schema import shipped_case_schema

    nulls = {"value": 0.9, "unit": None, "time": None, "comparator": None, "reference_low": None,
             "reference_high": None}
    doc = {"format": "leukos-case/1", "labs": {"phosphate": [nulls]}}
    assert case_from_dict(doc) == case_from_dict({"format": "leukos-case/1", "labs": {"phosphate": [{"value": 0.9}]}})
    validator = jsonschema.Draft202012Validator(shipped_case_schema())
    assert list(validator.iter_errors(doc)) == []
    assert list(validator.iter_errors({"labs": {"phosphate": {"value": 0.9, "comparator": "~"}}}))  # still an enum


# bad input, the error class, and a fragment the message must contain (field or fix)
BAD = [
    ("labs: {wbc: 250000}", ImplausibleValueError, "labs.wbc"),
    ("labs: {potassium: 60}", ImplausibleValueError, "labs.potassium"),
    ("labs: {wbc: -3}", ImplausibleValueError, "labs.wbc"),
    ("symptoms: [dyspnoea_rest]", UnknownTermError, "did you mean 'dyspnea_rest'"),
    ("symptoms: [headace]", UnknownTermError, "headache"),
    ("patient: {sexx: female}", CaseFormatError, "did you mean 'sex'"),
    ("labs: {wbcc: 250}", CaseFormatError, "did you mean 'wbc'"),
    ("labs: {wbc: '250 furlongs'}", UnitError, "labs.wbc.unit"),
    ("labs: {wbc: {value: 250, unit: mg/dL}}", UnitError, "wrong dimension"),
    ("labs: {wbc: high}", CaseFormatError, "number followed by a unit"),
    ("labs: {wbc: true}", CaseFormatError, "labs.wbc"),
    ("labs: {wbc: {value: 250, unti: K/uL}}", CaseFormatError, "did you mean 'unit'"),
    ("labs: {wbc: [{value: 250}, {value: 260}]}", CaseFormatError, "time"),
    ("labs: {wbc: {value: 250, time: yesterday}}", CaseFormatError, "ISO 8601"),
    ("format: leukos-case/2", CaseFormatError, "leukos-case/1"),
    ("findings: {known_diagnosis: AMLL}", CaseFormatError, "AML"),
    ("patient: {age_years: 300}", CaseFormatError, "patient.age_years"),
    ("leukostasis_grades: {pulmonary: 5}", CaseFormatError, "leukostasis_grades.pulmonary"),
    ("- just a list", CaseFormatError, "mapping"),
    ("", CaseFormatError, "empty"),
    ("   \n", CaseFormatError, "empty"),
    ("{\"labs\": {\"wbc\": 250,}}", CaseFormatError, "line 1"),
    ("labs: {wbc: [250", CaseFormatError, "line"),
]


@pytest.mark.parametrize("text,cls,fragment", BAD)
def test_bad_input_gives_one_clear_error(text, cls, fragment):
    with pytest.raises(cls) as err:
        load_case_text(text)
    assert fragment in err.value.message
    for d in err.value.details:
        assert d.field and d.expected and d.fix


def test_all_problems_are_reported_at_once():
    with pytest.raises(LeukosUserError) as err:
        load_case_text("patient: {sexx: female}\nlabs: {wbc: 250000, potassium: 60}\nsymptoms: [headace]")
    fields = {d.field for d in err.value.details}
    assert {"patient.sexx", "labs.wbc", "labs.potassium", "symptoms[0]"} <= fields


def test_huge_input_is_refused_before_parsing():
    blob = b"{" + b" " * (MAX_CASE_BYTES + 10) + b"}"
    with pytest.raises(CaseFormatError, match="MB"):
        load_case_text(blob)


def test_binary_input_is_refused():
    with pytest.raises(CaseFormatError, match="UTF-8"):
        load_case_text(b"\xff\xfe\x00garbage")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
case_like = st.fixed_dictionaries({}, optional={
    "labs": st.dictionaries(st.sampled_from(["wbc", "potassium", "blasts_pct", "x"]), json_values, max_size=3),
    "symptoms": json_values, "patient": json_values, "findings": json_values, "format": json_values,
})


@settings(max_examples=300, deadline=None)
@given(doc=st.one_of(json_values, case_like))
def test_the_loader_never_crashes(doc):
    """Arbitrary input gives a Case or a LeukosUserError — never another exception."""
    try:
        case_from_dict(doc)
    except LeukosUserError:
        pass


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_the_parser_never_crashes_on_text(text):
    try:
        load_case_text(text)
    except LeukosUserError:
        pass


def test_mpn_mimic_fields_absolute_counts_genes_smear_and_marrow():
    """docs/case-format.md: absolute counts in 10*9/L, gene results, smear and marrow findings."""
    case = load_case_text("""
labs: {wbc: "85.1 K/uL", monocytes_abs: "19.57 K/uL", neutrophils_abs: "25200 /uL"}
findings:
  genetics: {jak2: positive, calr: negative, mpl: negative, setbp1: positive, asxl1: unknown}
  smear: {dysgranulopoiesis: true, teardrop_cells: false, leukoerythroblastosis: true}
  marrow: {fibrosis_grade: 2}
""")
    assert case.value("monocytes_abs") == pytest.approx(19.57)
    assert case.value("neutrophils_abs") == pytest.approx(25.2)
    g = case.findings.gene
    assert g("jak2") is GeneticResult.POSITIVE and g("calr") is GeneticResult.NEGATIVE
    assert g("setbp1") is GeneticResult.POSITIVE and g("asxl1") is GeneticResult.UNKNOWN
    sm = case.findings.smear
    assert sm.dysgranulopoiesis is True and sm.teardrop_cells is False and sm.leukoerythroblastosis is True
    assert case.findings.marrow.fibrosis_grade == 2


@pytest.mark.parametrize("doc,field", [
    ({"findings": {"marrow": {"fibrosis_grade": 4}}}, "findings.marrow.fibrosis_grade"),
    ({"findings": {"marrow": {"fibrosis_grade": 1.5}}}, "findings.marrow.fibrosis_grade"),
    ({"findings": {"smear": {"teardrop_cells": "many"}}}, "findings.smear.teardrop_cells"),
    ({"findings": {"genetics": {"jak2": "V617F"}}}, "findings.genetics.jak2"),
    ({"labs": {"monocytes_abs": 5000}}, "labs.monocytes_abs"),
    ({"labs": {"monocytes_abs": "12 %"}}, "labs.monocytes_abs"),
])
def test_bad_mpn_mimic_fields_are_named(doc, field):
    with pytest.raises(LeukosUserError) as exc:
        case_from_dict(doc)
    assert any(d.field.startswith(field) for d in exc.value.details), [d.field for d in exc.value.details]
