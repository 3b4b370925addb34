"""Hypothesis over FHIR Bundles and CDS requests: whatever the body, the answer is never a 5xx, and
every 4xx has the common error shape (field, value, expected, fix).

Bundles are built from near-valid Observations (the real LOINC codes and units leukos reads) with
hostile leaves: non-finite and huge numbers, lone surrogates, wrong JSON types, odd units,
conflicting times, other patients' subjects.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leukos.service.app import create_app
from leukos.service.settings import ServiceSettings

from .conftest import EXAMPLES, Client, needs_engine, needs_fhir

pytestmark = [needs_engine(), needs_fhir(), pytest.mark.slow]

PID = "fuzz-patient"
LOINCS = ["6690-2", "26464-8", "777-3", "718-7", "2823-3", "2777-1", "3084-1", "2160-0", "14682-9", "2532-0",
          "3255-7", "709-8", "9999-9"]
UNITS = ["10*9/L", "10*3/uL", "K/uL", "mmol/L", "mg/dL", "umol/L", "U/L", "g/dL", "%", "", "kelvin", "{x}/L"]
HOSTILE_TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["\ud800", "a\udfffb", "Patient/../x", "‮", "\x00"]))
NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-10**30, max_value=10**30),
                   st.sampled_from([0, -1, 1e-320, 1e308, 250, 12]))
LEAF = st.one_of(NUMBER, HOSTILE_TEXT, st.none(), st.booleans(), st.just([]), st.just({}))
PLAIN = st.floats(min_value=0.5, max_value=400, allow_nan=False)


def mostly(draw, usual, hostile, odds: int = 14):
    """``usual`` most of the time, ``hostile`` one time in ``odds``: enough valid Bundles reach the rules."""
    return draw(hostile) if draw(st.integers(0, odds - 1)) == 0 else draw(usual)


@st.composite
def observation(draw, i: int = 0):
    obs = {"resourceType": "Observation", "id": mostly(draw, st.just(f"o{i}"), HOSTILE_TEXT),
           "status": mostly(draw, st.just("final"), st.sampled_from(["amended", "entered-in-error", "bogus"])),
           "code": {"coding": [{"system": "http://loinc.org", "code": draw(st.sampled_from(LOINCS))}]},
           "subject": {"reference": mostly(draw, st.just(f"Patient/{PID}"), st.just("Patient/other"))},
           "effectiveDateTime": mostly(draw, st.sampled_from(["2026-03-01T08:00:00Z", "2026-03-01T09:00:00Z"]),
                                       st.sampled_from(["2026-03", "yesterday"])),
           "valueQuantity": {"value": mostly(draw, PLAIN, NUMBER), "system": "http://unitsofmeasure.org",
                             "code": mostly(draw, st.sampled_from(["10*9/L", "mmol/L", "g/dL"]), st.sampled_from(UNITS))}}
    if draw(st.integers(0, 3)) == 0:
        obs["referenceRange"] = [{"low": {"value": mostly(draw, PLAIN, NUMBER)},
                                  "high": {"value": mostly(draw, PLAIN, NUMBER)}}]
    if draw(st.integers(0, 7)) == 0:  # one element of the wrong JSON type
        key = draw(st.sampled_from(["code", "subject", "valueQuantity", "status", "referenceRange", "id"]))
        obs[key] = draw(LEAF)
    return obs


@st.composite
def bundle(draw):
    n = draw(st.integers(0, 6))
    entries = [{"resource": {"resourceType": "Patient", "id": PID,
                             "gender": mostly(draw, st.just("female"), st.just("x")),
                             "birthDate": mostly(draw, st.just("1970-05-31"), st.sampled_from(["1970", "31/05/1970"]))}}]
    entries += [{"resource": draw(observation(i))} for i in range(n)]
    b = {"resourceType": "Bundle", "type": mostly(draw, st.just("collection"), st.just("document")),
         "entry": entries}
    if draw(st.integers(0, 11)) == 0:
        b["entry"] = draw(LEAF)
    return b


APP = create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES))
CLIENT = Client(APP)


def _check(r) -> None:
    assert r.status_code < 500, r.text[:500]
    if r.status_code >= 400:
        body = r.json()
        assert set(body) == {"error", "title", "details"}, body
        for d in body["details"]:
            assert set(d) == {"field", "value", "expected", "fix"}, d


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(bundle())
def test_rest_fhir_bundle_never_5xx(b):
    _check(CLIENT.post("/api/assess", content=json.dumps(b).encode(), headers={"Content-Type": "application/fhir+json"}))


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(bundle(), st.sampled_from([PID, PID, PID, "other", "\ud800", "a/b"]),
       st.one_of(st.just("d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"), HOSTILE_TEXT))
def test_cds_patient_view_never_5xx(b, patient_id, hook_instance):
    entries = b["entry"] if isinstance(b["entry"], list) else []
    labs = {"resourceType": "Bundle", "type": "searchset", "entry": entries[1:]}
    req = {"hook": "patient-view", "hookInstance": hook_instance, "context": {"patientId": patient_id},
           "prefetch": {"patient": entries[0]["resource"] if entries else None, "labs": labs,
                        "conditions": None, "meds": None}}
    _check(CLIENT.post("/cds-services/leukos-patient-view", content=json.dumps(req).encode(),
                       headers={"Content-Type": "application/json"}))
