"""Issue 11 probes, kept as regression tests: hostile bodies get a 4xx naming field, value, expected
and fix (never a 5xx, a hang or a silently changed verdict), on REST, CDS Hooks and the CLI alike.

Each test names the probe it keeps and asserts the new result.
"""

from __future__ import annotations

import json

import pytest

from .conftest import EXAMPLES, needs_engine, needs_fhir
from .fhir_data import PATIENT_ID, order_select_request, patient_view_request

PV = "/cds-services/leukos-patient-view"
OS = "/cds-services/leukos-order-select"
FHIR = {"Content-Type": "application/fhir+json"}
pytestmark = [needs_engine(), needs_fhir()]

BILLION_LAUGHS = b"""a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def _case(**labs) -> dict:
    return {"id": "probe", "as_of": "2026-03-01T08:00:00Z", "patient": {"age_years": 50, "sex": "female"},
            "labs": {"wbc": 250, **labs}}


def _obs(oid: str, value, unit: str = "10*9/L", loinc: str = "6690-2", t: str = "2026-03-01T08:00:00Z",
         **extra) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
            "subject": {"reference": f"Patient/{PATIENT_ID}"}, "effectiveDateTime": t,
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
            **extra}


def _bundle(*resources) -> dict:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": {"resourceType": "Patient", "id": PATIENT_ID, "gender": "female"}}]
            + [{"resource": r} for r in resources]}


def _assert_user_error(r, status: int = 422, field: str | None = None) -> dict:
    assert r.status_code == status, r.text[:500]
    body = r.json()
    assert set(body) == {"error", "title", "details"}
    assert body["details"], body
    for d in body["details"]:
        assert set(d) == {"field", "value", "expected", "fix"} and d["expected"] and d["fix"]
    if field is not None:
        assert any(d["field"].startswith(field) for d in body["details"]), body["details"]
    return body


# -- One request freezes everyone ---------------------------------------------------------------

def test_yaml_billion_laughs_is_refused_at_the_alias_bound(dev_client):
    body = _assert_user_error(dev_client.post("/api/assess", content=BILLION_LAUGHS,
                                              headers={"Content-Type": "application/yaml"}))
    assert "alias" in body["details"][0]["expected"]


def test_cli_refuses_the_yaml_bomb_with_exit_2(tmp_path):
    from typer.testing import CliRunner

    from leukos.cli.main import app, register

    register()
    bomb = tmp_path / "bomb.yaml"
    bomb.write_bytes(BILLION_LAUGHS)
    r = CliRunner().invoke(app, ["assess", str(bomb)])
    assert r.exit_code == 2, r.output
    assert "alias" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("kind", ["json", "yaml"])
def test_nesting_10000_levels_is_422_not_recursion_error(dev_client, kind):
    text = "[" * 10_000 + "]" * 10_000
    if kind == "yaml":
        text = "a: " + text
    body = _assert_user_error(dev_client.post("/api/assess", content=text.encode()))
    assert "nesting" in body["details"][0]["value"] or "levels" in body["details"][0]["expected"]


def test_deep_nesting_in_a_cds_request_is_422(dev_client):
    raw = b'{"hook": "patient-view", "hookInstance": "x", "context": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001
    _assert_user_error(dev_client.post(PV, content=raw, headers={"Content-Type": "application/json"}))


def test_many_distinct_long_units_are_refused_before_they_are_parsed(dev_client):
    # the probe: 400 distinct long invented units blocked the server for 33 s
    obs = [_obs(f"o{i}", 1.0 + i, unit=f"{{garbage-unit-{i:04d}-" + "x" * 30 + "}/L", loinc="2823-3")
           for i in range(400)]
    body = _assert_user_error(dev_client.post("/api/assess", content=json.dumps(_bundle(*obs)), headers=FHIR))
    assert body["error"] == "UnitError"
    assert any("characters" in d["expected"] or "different units" in d["expected"] for d in body["details"])


def test_units_per_request_are_bounded_even_when_short(dev_client):
    obs = [_obs(f"o{i}", 4.0, unit=f"{{u{i}}}mmol/L", loinc="2823-3", t=f"2026-03-01T{i % 24:02d}:{i // 24:02d}:00Z")
           for i in range(120)]
    body = _assert_user_error(dev_client.post("/api/assess", content=json.dumps(_bundle(*obs)), headers=FHIR))
    assert any("different units" in d["expected"] for d in body["details"])


# -- 5xx on bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("literal, shown", [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"),
                                            ("1e400", "1e400"), ("9" * 400, "999999999999… (a number of 400 digits)")])
def test_non_finite_lab_values_rest_case(dev_client, literal, shown):
    # a number beyond a double is quoted as written (it read "Infinity (or a number beyond ±1.8e308)")
    raw = json.dumps(_case(platelets=30)).replace('"platelets": 30', f'"platelets": {literal}')
    body = _assert_user_error(dev_client.post("/api/assess", content=raw), field="labs.platelets")
    assert body["details"][0]["value"] == shown


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e400"])
def test_non_finite_lab_values_rest_fhir(dev_client, literal):
    raw = json.dumps(_bundle(_obs("w1", 123))).replace('"value": 123', f'"value": {literal}')
    _assert_user_error(dev_client.post("/api/assess", content=raw, headers=FHIR), field="entry[1]")


@pytest.mark.parametrize("literal", ["NaN", "-Infinity", "1e400", "2.5E+401", "9" * 400, "-" + "9" * 310,
                                     "1" + "0" * 300 + "e10"])
def test_non_finite_lab_values_cds(dev_client, literal):
    # a 400-digit integer passed the CDS body's fast parser as a Python int and ended in a 500
    # (OverflowError in float()); 300 digits with a 2-digit exponent parse to inf
    req = patient_view_request("01-aml-leukostasis.yaml")
    req["prefetch"]["labs"]["entry"][0]["resource"]["valueQuantity"]["value"] = 123.25
    raw = json.dumps(req).replace("123.25", literal)
    _assert_user_error(dev_client.post(PV, content=raw, headers={"Content-Type": "application/json"}),
                       field="prefetch.labs.entry[0]")


def test_huge_integer_literal_is_422(dev_client):
    raw = json.dumps(_case()).replace('"wbc": 250', '"wbc": ' + "9" * 5000)
    _assert_user_error(dev_client.post("/api/assess", content=raw))


def test_age_years_nan_is_refused_not_dropped(dev_client):
    raw = json.dumps(_case()).replace('"age_years": 50', '"age_years": NaN')
    _assert_user_error(dev_client.post("/api/assess", content=raw), field="patient.age_years")
    yaml_text = "id: y\npatient: {age_years: .nan}\nlabs: {wbc: 250}\n"
    _assert_user_error(dev_client.post("/api/assess", content=yaml_text), field="patient.age_years")


@pytest.mark.parametrize("high", [0, -5.1])
def test_non_positive_reference_high_is_refused_case_format(dev_client, high):
    case = _case(potassium={"value": 6.4, "unit": "mmol/L", "reference_high": high})
    _assert_user_error(dev_client.post("/api/assess", json=case), field="labs.potassium.reference_high")


def test_nan_reference_high_is_refused_case_format(dev_client):
    raw = json.dumps(_case(potassium={"value": 6.4, "unit": "mmol/L", "reference_high": 5.1})).replace("5.1", "NaN")
    _assert_user_error(dev_client.post("/api/assess", content=raw))


@pytest.mark.parametrize("high", [0, -1])
def test_non_positive_reference_high_is_refused_fhir(dev_client, high):
    k = _obs("k1", 6.4, unit="mmol/L", loinc="2823-3", referenceRange=[{"high": {"value": high, "unit": "mmol/L"}}])
    _assert_user_error(dev_client.post("/api/assess", json=_bundle(_obs("w1", 250), k), headers=FHIR),
                       field="entry[2].resource.referenceRange[0].high")


@pytest.mark.parametrize("high", [0, -1, -0.5])
def test_a_bad_reference_limit_in_a_cds_call_leaves_out_the_range_not_the_cards(dev_client, high):
    """REST refuses it (above: its caller can correct it); a CDS call used to be refused too, so the
    EHR showed no card, not even the hyperleukocytosis one. The result stands without its range (what
    the range would decide is then not assessed, never assumed normal) and every card says so."""
    k = _obs("k1", 6.4, unit="mmol/L", loinc="2823-3", referenceRange=[{"high": {"value": high, "unit": "mmol/L"}}])
    r = dev_client.post(PV, json=_pv([_obs("w1", 250), k]))
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    assert any(c["summary"].startswith("Hyperleukocytosis: WBC 250") for c in cards), [c["summary"] for c in cards]
    limit = format(high, ".12g")  # valid FHIR decimals (a value that is not one is refused as invalid R4)
    for c in cards:
        assert (f"Observation/k1: its reference range cannot be used (the upper limit is {limit}; expected a "
                "finite number above 0)") in c["detail"], c["detail"]
    from leukos.interop.fhir import case_from_fhir

    case = case_from_fhir(_bundle(_obs("w1", 250), k), leave_out_unusable=True)
    potassium = case.lab("potassium")
    assert potassium is not None and potassium.value == 6.4 and potassium.reference_high is None


def test_swapped_reference_limits_in_a_cds_call_leave_out_the_range_and_refuse_on_rest(dev_client):
    k = _obs("k1", 6.4, unit="mmol/L", loinc="2823-3",
             referenceRange=[{"low": {"value": 5.1, "unit": "mmol/L"}, "high": {"value": 3.5, "unit": "mmol/L"}}])
    cards = dev_client.post(PV, json=_pv([_obs("w1", 250), k])).json()["cards"]
    assert any(c["summary"].startswith("Hyperleukocytosis: WBC 250") for c in cards)
    for c in cards:
        assert ("Observation/k1: its reference range cannot be used (the lower limit, 5.1, is not below the upper "
                "limit, 3.5 mmol/L)") in c["detail"], c["detail"]
    _assert_user_error(dev_client.post("/api/assess", json=_bundle(_obs("w1", 250), k), headers=FHIR),
                       field="entry[2].resource.referenceRange[0].low.value")


SURROGATE = "\\ud800"  # as it travels in JSON text: a lone high surrogate


@pytest.mark.parametrize("where", ["id", "drug", "symptom"])
def test_lone_surrogate_in_a_case_is_422(dev_client, where):
    case = _case()
    if where == "id":
        case["id"] = "X"
    elif where == "drug":
        case["findings"] = {"drugs": ["X"]}
    else:
        case["symptoms"] = ["X"]
    raw = json.dumps(case).replace('"X"', f'"a{SURROGATE}b"')
    body = _assert_user_error(dev_client.post("/api/assess", content=raw))
    assert "surrogate" in body["details"][0]["expected"]


@pytest.mark.parametrize("where", ["hookInstance", "observation id", "patientId"])
def test_lone_surrogate_in_a_cds_request_is_422_and_audited(dev_client, where, tmp_path):
    req = patient_view_request("01-aml-leukostasis.yaml")
    if where == "hookInstance":
        req["hookInstance"] = "X"
    elif where == "observation id":
        req["prefetch"]["labs"]["entry"][0]["resource"]["id"] = "X"
    else:
        req["context"]["patientId"] = "X"
    raw = json.dumps(req).replace('"X"', f'"p{SURROGATE}"')
    _assert_user_error(dev_client.post(PV, content=raw, headers={"Content-Type": "application/json"}))
    audit = dev_client.app.state.leukos.audit
    assert audit.records[-1]["event"]["extension"][0]["valueString"] == f"POST {PV} 422"


def test_draft_orders_of_the_wrong_json_type_is_422(dev_client):
    req = order_select_request("01-aml-leukostasis.yaml", "rbc")
    req["context"]["draftOrders"] = "x"
    _assert_user_error(dev_client.post(OS, json=req), field="context.draftOrders")
    req["context"]["draftOrders"] = {"resourceType": "Bundle", "entry": "x"}
    _assert_user_error(dev_client.post(OS, json=req), field="context.draftOrders")


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"{", b"\xff\xfe", b'{"hook": 5}'])
def test_cds_error_body_has_the_rest_shape(dev_client, body):
    _assert_user_error(dev_client.post(PV, content=body, headers={"Content-Type": "application/json"}))


def test_cds_unknown_service_404_has_the_common_shape(dev_client):
    r = dev_client.post("/cds-services/nope", json={})
    assert r.status_code == 404 and r.json()["error"] == "NotFound" and "details" in r.json()


def test_nan_query_parameter_is_422(dev_client):
    case = (EXAMPLES / "01-aml-leukostasis.yaml").read_bytes()
    _assert_user_error(dev_client.post("/api/plan?blood_volumes=nan", content=case))


# -- Conflicting duplicates -----------------------------------------------------------------------

def _wbc_view(assessment: dict) -> dict:
    return assessment["hyperleukocytosis"]


def test_conflicting_same_time_wbc_is_not_assessed_on_every_path_in_any_order(dev_client):
    a, b = _obs("wbc-a", 260), _obs("wbc-b", 12)
    answers = []
    for order in ((a, b), (b, a)):
        r = dev_client.post("/api/assess", json=_bundle(*order), headers=FHIR)
        assert r.status_code == 200, r.text
        answers.append(r.json())
    assert _wbc_view(answers[0]) == _wbc_view(answers[1])
    assert _wbc_view(answers[0]).get("present") is not True
    text = json.dumps(answers[0])
    assert "conflicting" in text and "not assessed" in text
    # the case format reaches the same verdict
    case = _case()
    case["labs"]["wbc"] = [{"value": 260, "unit": "10*9/L", "time": "2026-03-01T08:00:00Z"},
                           {"value": 12, "unit": "10*9/L", "time": "2026-03-01T08:00:00Z"}]
    r = dev_client.post("/api/assess", json=case)
    assert r.status_code == 200 and _wbc_view(r.json()) == _wbc_view(answers[0])
    assert "conflicting" in json.dumps(r.json())
    # and CDS Hooks: no hyperleukocytosis card from either value, and the cards say why
    req = patient_view_request("07-normal-count.yaml")
    req["prefetch"]["labs"]["entry"] = [{"resource": a}, {"resource": b}]
    cards = dev_client.post(PV, json=req).json()["cards"]
    assert cards and not any(c["summary"].startswith("Hyperleukocytosis") for c in cards)
    assert all("conflicting results at the same time" in c["detail"] and "260" in c["detail"] for c in cards)


def test_equal_same_time_duplicates_are_merged(dev_client):
    r = dev_client.post("/api/assess", json=_bundle(_obs("w1", 260), _obs("w2", 260)), headers=FHIR)
    assert r.status_code == 200
    assert _wbc_view(r.json())["present"] is True
    assert "conflicting" not in json.dumps(r.json())


@pytest.mark.parametrize("path, value, field", [
    (("context",), "x", "body.context"),
    (("context", "selections"), "x", "context.selections"),
    (("context", "selections"), [1, 2], "context.selections"),
    (("prefetch",), ["x"], "body.prefetch"),
    (("prefetch", "labs"), "x", "body.prefetch.labs"),
    (("hookInstance",), {"a": 1}, "body.hookInstance"),
    (("context", "patientId"), 42, "context.patientId"),
])
def test_wrong_json_types_in_a_cds_request_are_422(dev_client, path, value, field):
    req = order_select_request("01-aml-leukostasis.yaml", "rbc")
    target = req
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    _assert_user_error(dev_client.post(OS, json=req), field=field)


# -- A birth date after the results -------------------------------------------------------------

def test_a_birth_date_after_the_results_is_never_read_as_a_child(dev_client):
    """Found after issue 11's probes: a birth date after the case's date gave a negative age, which
    the rules read as a child's (paediatric tumour lysis limits for an adult), silently; a birth date
    in 1800 gave an age of 226. The case format refuses it, naming the field; the FHIR import leaves
    the birth date out and says so, on the assessment and on every CDS card."""
    for birth in ("2030-01-01", "1800-01-01"):
        case = _case()
        case["patient"] = {"birth_date": birth, "sex": "female"}
        body = _assert_user_error(dev_client.post("/api/assess", json=case), field="patient.birth_date")
        assert "0 to 130 years" in body["details"][0]["expected"]

        bundle = _bundle(_obs("wbc", 260))
        bundle["entry"][0]["resource"]["birthDate"] = birth
        r = dev_client.post("/api/assess", json=bundle, headers=FHIR)
        assert r.status_code == 200, r.text[:500]
        assert "birth date gives an age outside 0 to 130 years" in json.dumps(r.json())
        assert birth not in json.dumps(r.json())  # the record's date is not repeated back

        req = patient_view_request("07-normal-count.yaml")
        req["prefetch"]["patient"]["birthDate"] = birth
        req["prefetch"]["labs"]["entry"] = [{"resource": _obs("wbc", 260)}]
        cards = dev_client.post(PV, json=req).json()["cards"]
        assert any(c["summary"].startswith("Hyperleukocytosis") for c in cards)  # the count still reaches the EHR
        assert all("birth date gives an age outside 0 to 130 years" in c["detail"] for c in cards)

    case = _case()  # a newborn assessed on the day of birth is a person's age
    case["patient"] = {"birth_date": "2026-03-01", "sex": "female"}
    assert dev_client.post("/api/assess", json=case).status_code == 200


# -- A result in the record that cannot be used -------------------------------------------------

UNUSABLE = "cannot be used"


def _pv(labs: list[dict]) -> dict:
    req = patient_view_request("07-normal-count.yaml")
    req["prefetch"]["labs"]["entry"] = [{"resource": r} for r in labs]
    return req


@pytest.mark.parametrize("bad", [
    {"value": 9e7},  # ×10⁹/L: implausible
    {"unit": "furlongs", "code": "furlongs"},  # no converter knows it
    {"unit": "mg/dL", "code": "mg/dL"},  # another dimension
], ids=["implausible", "unit-unknown", "unit-wrong-dimension"])
def test_a_latest_result_that_cannot_be_used_is_not_assessed_and_said_on_every_card(dev_client, bad):
    """Found after issue 11's probes: one result the import cannot use (a mis-mapped unit, a value
    no laboratory reports) refused the whole CDS call, so the EHR showed no card at all, not even the
    tumour lysis card the rest supports. During a CDS call it is left out and said on every card; an
    older white count never speaks for the newer one (the analyte is not assessed). REST and the CLI
    still refuse it, naming the element: their caller can correct it."""
    older = _obs("w-old", 182, t="2026-02-28T08:00:00Z")
    latest = _obs("w-new", 260)
    latest["valueQuantity"].update(bad)
    potassium = _obs("k", 7.1, unit="mmol/L", loinc="2823-3")
    cards = dev_client.post(PV, json=_pv([older, latest, potassium])).json()["cards"]
    assert cards
    assert not any(c["summary"].startswith("Hyperleukocytosis") for c in cards)  # not from the older 182
    for c in cards:
        assert "Observation/w-new" in c["detail"] and UNUSABLE in c["detail"]
        assert "White cell count is not assessed (treated as missing)" in c["detail"]

    r = dev_client.post("/api/assess", json=_bundle(older, latest, potassium), headers=FHIR)
    _assert_user_error(r, field="entry[2].resource.valueQuantity")


def test_what_could_not_be_used_is_read_with_the_finding_not_after_the_disclaimer(dev_client):
    """The note sits after a card's title and points, before what is missing, the working, the
    references and the footer (it was appended after the disclaimer, the last thing a reader reaches)."""
    older = _obs("w-old", 182, t="2026-02-28T08:00:00Z")
    older["valueQuantity"].update(unit="furlongs", code="furlongs")
    labs = [older, _obs("w-new", 260), _obs("k", 7.1, unit="mmol/L", loinc="2823-3")]
    cards = dev_client.post(PV, json=_pv(labs)).json()["cards"]
    assert len(cards) >= 2
    for c in cards:
        d = c["detail"]
        note = d.index("**Not everything could be assessed**")
        assert note < d.index(UNUSABLE) < d.index("not a medical device")
        for later in ("<details>", "References:", "Not recorded, so not assessed"):
            assert later not in d or note < d.index(later), (c["summary"], later)
        title, points = d.split("\n\n")[:2]
        assert title.startswith("**") and (points.startswith("- ") or points.startswith("**Not everything"))


def test_an_earlier_result_that_cannot_be_used_leaves_the_later_one_in_charge(dev_client):
    earlier = _obs("w-old", 182, t="2026-02-28T08:00:00Z")
    earlier["valueQuantity"].update(unit="furlongs", code="furlongs")
    cards = dev_client.post(PV, json=_pv([earlier, _obs("w-new", 260)])).json()["cards"]
    assert any(c["summary"].startswith("Hyperleukocytosis: WBC 260") for c in cards), [c["summary"] for c in cards]
    for c in cards:
        assert "Observation/w-old gives 182 in the unit “furlongs”" in c["detail"]
        assert "left out of the series; the later result is used" in c["detail"]


def test_when_nothing_can_be_used_one_card_says_so(dev_client):
    only = _obs("w-new", 9e7)
    cards = dev_client.post(PV, json=_pv([only])).json()["cards"]
    assert len(cards) == 1 and cards[0]["indicator"] == "info"
    assert "Observation/w-new" in cards[0]["detail"] and UNUSABLE in cards[0]["detail"]
    # the summary names what was not assessed (it said only "Some patient data could not be read")
    assert cards[0]["summary"].startswith("Not assessed: White cell count (the record's results cannot be used")


def test_when_the_only_count_conflicts_the_card_summary_names_it(dev_client):
    cards = dev_client.post(PV, json=_pv([_obs("w-a", 260), _obs("w-b", 12)])).json()["cards"]
    assert len(cards) == 1 and cards[0]["indicator"] == "info", [c["summary"] for c in cards]
    assert cards[0]["summary"].startswith("Not assessed: White cell count"), cards[0]["summary"]
    assert "12 ×10⁹/L (Observation/w-b), 260 ×10⁹/L (Observation/w-a)" in cards[0]["detail"], cards[0]["detail"]


def test_an_implausible_weight_is_not_recorded_and_said(dev_client):
    weight = _obs("wt", 7000, unit="kg", loinc="29463-7")
    cards = dev_client.post(PV, json=_pv([_obs("w", 260), weight])).json()["cards"]
    assert any(c["summary"].startswith("Hyperleukocytosis") for c in cards)
    assert all("Weight: Observation/wt gives 7000 kg" in c["detail"] and "Weight is not recorded" in c["detail"]
               for c in cards)
    r = dev_client.post("/api/assess", json=_bundle(_obs("w", 260), weight), headers=FHIR)
    _assert_user_error(r, field="entry[2].resource.valueQuantity.value")


def test_the_card_link_opens_the_page_of_a_call_with_a_result_left_out(dev_client):
    cards = dev_client.post(PV, json=_pv([_obs("w", 260), _obs("k", 7.1, unit="mmol/L", loinc="2823-3"),
                                          _obs("h", 900, unit="g/dL", loinc="718-7")])).json()["cards"]
    assert all(UNUSABLE in c["detail"] for c in cards)
    url = next(link["url"] for c in cards for link in c.get("links") or ())
    page = dev_client.get(url[url.index("/ui/"):])
    assert page.status_code == 200
    assert "Observation/h" in page.text and UNUSABLE in page.text
    # on the page it is read at the top, with the headline, before the findings; not again among warnings
    html = page.text
    box = html.index('id="record-notes"')
    assert box < html.index(UNUSABLE) < html.index("Findings by urgency") and html.count(UNUSABLE) == 1


def test_a_card_lists_a_dozen_notes_and_the_page_all_of_them(dev_client):
    """A record with hundreds of results that cannot be used (within the body limit) still gives
    a card a clinician can read: a dozen notes, the count of the rest, and the page lists them all."""
    bad = [_obs(f"h{i}", 900 + i, unit="g/dL", loinc="718-7", t=f"2026-02-{1 + i % 27:02d}T08:{i:02d}:00Z")
           for i in range(30)]
    cards = dev_client.post(PV, json=_pv([_obs("w", 260), *bad])).json()["cards"]
    assert any(c["summary"].startswith("Hyperleukocytosis") for c in cards)
    for c in cards:
        assert c["detail"].count(UNUSABLE) == 12
        assert "… and 18 more: the full list is on the leukos page behind this card's link" in c["detail"]
    url = cards[0]["links"][0]["url"]
    assert dev_client.get(url[url.index("/ui/"):]).text.count(UNUSABLE) == 30
