"""The lean FHIR path never accepts what the R4B models refuse (property test), and it does accept the
plain shapes EHRs send (so the fast path is really taken)."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leukos.interop.fhir_lean import CallMemo, lean_valid


def _r4b_valid(resource: dict) -> bool:
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except (ValidationError, TypeError, ValueError):
        return False
    return True


OBS = {"resourceType": "Observation", "id": "wbc-1", "meta": {"profile": ["http://example.org/p"],
                                                             "lastUpdated": "2026-03-01T08:00:00Z"},
       "status": "final",
       "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                 "code": "laboratory"}]}],
       "code": {"coding": [{"system": "http://loinc.org", "code": "6690-2", "display": "WBC"}], "text": "WBC"},
       "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-03-01T08:00:00+01:00",
       "issued": "2026-03-01T09:00:00.000Z",
       "valueQuantity": {"value": 250.5, "comparator": ">", "unit": "10*9/L", "system": "http://unitsofmeasure.org",
                         "code": "10*9/L"},
       "referenceRange": [{"low": {"value": 4}, "high": {"value": 11, "unit": "10*9/L"}, "text": "4-11"}],
       "interpretation": [{"coding": [{"code": "HH"}]}]}
PATIENT = {"resourceType": "Patient", "id": "p1", "identifier": [{"system": "urn:x", "value": "MRN-1"}],
           "name": [{"use": "official", "family": "Doe", "given": ["J"]}], "gender": "female",
           "birthDate": "1970-05", "active": True}

COND = {"resourceType": "Condition", "id": "c1", "meta": {"lastUpdated": "2026-03-01T08:00:00Z"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "category": [{"coding": [{"code": "problem-list-item"}]}], "severity": {"text": "severe"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91861009", "display": "AML"}], "text": "AML"},
        "bodySite": [{"text": "marrow"}], "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e"},
        "onsetDateTime": "2026-02", "recordedDate": "2026-03-01T08:00:00Z", "recorder": {"display": "Dr A"},
        "asserter": {"reference": "Practitioner/x"}}
COND_PATHS = [("id",), ("clinicalStatus",), ("clinicalStatus", "coding", 0, "code"), ("verificationStatus", "text"),
              ("category", 0), ("severity",), ("code", "coding", 0, "system"), ("code", "text"), ("bodySite",),
              ("subject",), ("subject", "reference"), ("encounter", "type"), ("onsetDateTime",), ("onsetString",),
              ("abatementDateTime",), ("abatementString",), ("recordedDate",), ("recorder",), ("asserter", "display"),
              ("meta", "lastUpdated"), ("note",), ("extra",), ("resourceType",)]
PATHS = [("id",), ("status",), ("code", "text"), ("code", "coding", 0, "code"), ("code", "coding", 0, "system"),
         ("subject", "reference"), ("effectiveDateTime",), ("issued",), ("valueQuantity", "value"),
         ("valueQuantity", "comparator"), ("valueQuantity", "code"), ("referenceRange", 0, "low", "value"),
         ("meta", "lastUpdated"), ("meta", "profile", 0), ("category", 0, "coding", 0, "code"), ("code",),
         ("valueQuantity",), ("referenceRange",), ("extra",), ("valueQuantity", "extra"), ("code", "coding")]
VALUES = st.one_of(st.text(max_size=8), st.sampled_from(["", " ", "a b", "a  b", "2026-02-30", "2026-03-01T08:00:00",
                                                         "2026-03-01T08:00:60Z", "2026", "2026-13", "x\ny", "-1",
                                                         "final", "<", "<>", "1e3", "Patient/p1", "urn:x y"]),
                   st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
                   st.just([]), st.just({}), st.just([{}]), st.just({"text": "x"}))


def _set(doc, path, value):
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=3), st.booleans())
def test_lean_never_accepts_what_r4b_refuses(edits, patient):
    doc = copy.deepcopy(PATIENT if patient else OBS)
    for path, value in edits:
        if patient:
            path = ("birthDate",) if path[0] in ("effectiveDateTime", "issued") else (
                ("gender",) if path[0] == "status" else path)
        try:
            _set(doc, path, value)
        except (KeyError, IndexError, TypeError):
            continue
    if lean_valid(doc):
        assert _r4b_valid(doc), doc


def test_plain_shapes_take_the_lean_path():
    assert lean_valid(OBS) and _r4b_valid(OBS)
    assert lean_valid(PATIENT) and _r4b_valid(PATIENT)
    assert lean_valid(COND) and _r4b_valid(COND)


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(COND_PATHS), VALUES), min_size=1, max_size=3), st.booleans())
def test_lean_never_accepts_a_condition_r4b_refuses(edits, drop_subject):
    doc = copy.deepcopy(COND)
    if drop_subject:
        del doc["subject"]
    for path, value in edits:
        try:
            _set(doc, path, value)
        except (KeyError, IndexError, TypeError):
            continue
    if lean_valid(doc):
        assert _r4b_valid(doc), doc
    assert lean_valid(doc) == _reference_lean(doc), doc


def test_outside_the_lean_grammar_goes_to_the_full_path():
    for change in ({"extension": [{"url": "http://x", "valueString": "y"}]}, {"dataAbsentReason": {"text": "x"}},
                   {"effectiveDateTime": "2016-12-31T23:59:60Z"}, {"valueString": "x"}, {"note": [{"text": "x"}]}):
        assert not lean_valid({**OBS, **change}), change


@settings(max_examples=2000, deadline=None, derandomize=True)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-10**400, 10**400)))
def test_decimal_needs_no_pattern_for_python_numbers(v):
    # lean _decimal skips the FHIR decimal pattern: Python's text of any int or finite float matches it
    from leukos.interop.fhir_lean import _DECIMAL, _decimal

    assert _DECIMAL.fullmatch(str(v)) is not None
    assert _decimal(v) == (abs(v) <= 1.7976931348623157e308)


# -- the compiled grammar against a plain reading of the same table ---------------------------------


def _interpret(kind, v) -> bool:
    """The grammar table read directly (slow, obviously right): the reference for the compiled checks."""
    import datetime as dt
    import math

    from leukos.interop import fhir_lean as fl

    if isinstance(kind, tuple):
        tag, arg = kind
        if tag == "list":
            return type(v) is list and bool(v) and all(_interpret(arg, i) for i in v)
        if tag == "enum":
            return type(v) is str and v in fl._ENUMS[arg]
        if tag == "const":
            return v == arg
        if tag == "call":  # the same primitive type, only remembered differently
            return _interpret(arg, v)
        raise AssertionError(kind)
    if kind == "entries":
        return type(v) is list and all(i == {} or _interpret("BundleEntry", i) for i in v)
    if kind == "elsewhere":
        return True
    if kind in fl._TYPES:
        elements, required = fl._TYPES[kind]
        return (type(v) is dict and bool(v) and all(k in elements and _interpret(elements[k], x) for k, x in v.items())
                and all(r in v for r in required))
    if kind in fl._STRING_PATTERNS:
        return type(v) is str and fl._STRING_PATTERNS[kind].fullmatch(v) is not None
    if kind in fl._TIME_PATTERNS:
        if type(v) is not str or fl._TIME_PATTERNS[kind].fullmatch(v) is None:
            return False
        try:
            len(v) < 10 or dt.date(int(v[:4]), int(v[5:7]), int(v[8:10]))
        except ValueError:
            return False
        return True
    if kind == "decimal":
        return (type(v) is float and math.isfinite(v)) or (type(v) is int and abs(v) <= 1.7976931348623157e308)
    if kind == "boolean":
        return type(v) is bool
    if kind == "unsignedInt":
        return type(v) is int and 0 <= v <= 2_147_483_647
    raise AssertionError(kind)


def _reference_lean(doc) -> bool:
    if type(doc) is not dict or doc.get("resourceType") not in ("Observation", "Patient", "Condition", "Bundle"):
        return False
    if "dataAbsentReason" in doc and "valueQuantity" in doc:
        return False
    return _interpret(doc["resourceType"], doc)


BUNDLE_SHELL = {"resourceType": "Bundle", "id": "b-1", "type": "searchset", "total": 2,
                "timestamp": "2026-03-01T08:00:00Z", "entry": [{}, {"fullUrl": "urn:uuid:1"}]}
ALL_PATHS = [*PATHS, ("active",), ("gender",), ("birthDate",), ("name", 0, "given", 0), ("name", 0, "use"),
             ("identifier", 0, "value"), ("identifier", 0, "use"), ("code", "coding", 0, "userSelected"),
             ("valueQuantity", "system"), ("meta", "versionId"), ("referenceRange", 0, "text"), ("subject", "type")]
SHELL_PATHS = [("id",), ("type",), ("total",), ("timestamp",), ("entry",), ("entry", 0), ("entry", 1, "fullUrl"),
               ("extra",), ("resourceType",)]


@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.integers(0, 10**6), VALUES), min_size=0, max_size=3), st.sampled_from([0, 1, 2, 3]))
def test_compiled_grammar_answers_as_the_table_reads(edits, which):
    doc = copy.deepcopy((OBS, PATIENT, BUNDLE_SHELL, COND)[which])
    paths = (ALL_PATHS, ALL_PATHS, SHELL_PATHS, COND_PATHS)[which]
    for n, value in edits:
        try:
            _set(doc, paths[n % len(paths)], value)
        except (KeyError, IndexError, TypeError):
            continue
    assert lean_valid(doc) == _reference_lean(doc), doc
    assert lean_valid(doc) == lean_valid(copy.deepcopy(doc))  # the memo of valid strings changes nothing
    # nor does a call's memo of times, however many resources it has seen (one memo for every example)
    assert lean_valid(doc, _ONE_MEMO) == _reference_lean(doc), doc


_ONE_MEMO = CallMemo()


def test_no_patient_string_is_remembered_between_calls():
    # references, names, identifier values and entry URLs name the patient: only a call's memo holds them
    from leukos.interop import fhir_lean as fl

    patient = {**PATIENT, "identifier": [{"system": "urn:x", "value": "MRN-unique-77"}],
               "name": [{"family": "Unique-Family", "given": ["Unique-Given"], "text": "Unique Text"}]}
    obs = {**OBS, "subject": {"reference": "Patient/unique-p", "display": "Unique Display"},
           "meta": {"source": "urn:unique-source"},
           "code": {**OBS["code"], "text": "Unique typed test name"}}
    shell = {**BUNDLE_SHELL, "entry": [{"fullUrl": "urn:uuid:unique-url"}]}
    memo = CallMemo()
    assert lean_valid(patient, memo) and lean_valid(obs, memo) and lean_valid(shell, memo)
    kept = set().union(*(v for k, v in fl._VALIDATORS["Observation"].__globals__.items() if k.startswith("_ok_")))
    for text in ("MRN-unique-77", "Unique-Family", "Unique-Given", "Unique Text", "Patient/unique-p", "Unique Display",
                 "urn:unique-source", "urn:uuid:unique-url", "Unique typed test name"):
        assert text not in kept, text
    assert {"Patient/unique-p", "Unique-Family", "MRN-unique-77"} <= memo.string
    assert {"urn:uuid:unique-url", "urn:unique-source"} <= memo.uri
    assert "http://loinc.org" in kept  # vocabulary is still remembered


def test_call_memo_keeps_each_time_type_apart():
    # a valid dateTime is not a valid instant: proving the one must not admit the other
    memo = CallMemo()
    assert lean_valid({**OBS, "effectiveDateTime": "2026-03-01", "issued": "2026-03-01T09:00:00Z"}, memo)
    assert memo.dateTime >= {"2026-03-01"} and "2026-03-01" not in memo.instant
    assert not lean_valid({**OBS, "issued": "2026-03-01"}, memo)
    assert not lean_valid({**OBS, "effectiveDateTime": "2026-02-30"}, memo)  # a refused time is not kept
    assert "2026-02-30" not in memo.dateTime
