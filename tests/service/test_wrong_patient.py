"""Wrong-patient probes (issue 11): cards are for ``context.patientId`` only.

Probe: patientId A with every prefetched resource about patient B returned 200 and urgent cards.
Now: refused with 422 naming each resource that is someone else's (never carded).
"""

from __future__ import annotations

import copy

import pytest

from .conftest import needs_engine, needs_fhir
from .fhir_data import PATIENT_ID, order_select_request, patient_view_request

PV = "/cds-services/leukos-patient-view"
OS = "/cds-services/leukos-order-select"
pytestmark = [needs_engine(), needs_fhir()]


def _entries(req, key):
    return [e["resource"] for e in req["prefetch"][key]["entry"]]


def test_context_patient_a_with_everything_about_b_is_refused(dev_client):
    req = patient_view_request("01-aml-leukostasis.yaml")
    req["context"]["patientId"] = "patient-A"
    r = dev_client.post(PV, json=req)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "WrongPatientError" and "cards" not in body
    fields = {d["field"] for d in body["details"]}
    assert "prefetch.patient.id" in fields
    assert any(f.startswith("prefetch.labs.entry[") and f.endswith(".subject.reference") for f in fields)


def test_one_observation_of_another_patient_is_refused(dev_client):
    req = patient_view_request("01-aml-leukostasis.yaml")
    _entries(req, "labs")[3]["subject"] = {"reference": "Patient/someone-else"}
    r = dev_client.post(PV, json=req)
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["details"]] == ["prefetch.labs.entry[3].resource.subject.reference"]
    assert r.json()["details"][0]["value"] == "Patient/someone-else"


def test_absolute_subject_reference_of_the_same_patient_is_accepted(dev_client):
    req = patient_view_request("01-aml-leukostasis.yaml")
    for obs in _entries(req, "labs"):
        obs["subject"] = {"reference": f"https://ehr.example.org/fhir/Patient/{PATIENT_ID}"}
    assert dev_client.post(PV, json=req).status_code == 200


def test_observation_without_subject_cannot_be_confirmed(dev_client):
    req = patient_view_request("01-aml-leukostasis.yaml")
    del _entries(req, "labs")[0]["subject"]
    r = dev_client.post(PV, json=req)
    assert r.status_code == 422
    assert r.json()["details"][0]["field"] == "prefetch.labs.entry[0].resource.subject"


def test_condition_of_another_patient_is_refused(dev_client):
    req = patient_view_request("01-aml-leukostasis.yaml")
    _entries(req, "conditions")[0]["subject"] = {"reference": "Patient/B"}
    assert dev_client.post(PV, json=req).status_code == 422


def test_draft_order_for_another_patient_is_refused(dev_client):
    req = order_select_request("01-aml-leukostasis.yaml", "rbc")
    draft = copy.deepcopy(req["context"]["draftOrders"])
    draft["entry"][0]["resource"]["subject"] = {"reference": "Patient/B"}
    req["context"]["draftOrders"] = draft
    r = dev_client.post(OS, json=req)
    assert r.status_code == 422
    assert r.json()["details"][0]["field"] == "context.draftOrders.entry[0].resource.subject.reference"


def test_patient_id_that_is_not_a_fhir_id_is_refused_before_any_url_is_built(dev_client):
    req = patient_view_request("01-aml-leukostasis.yaml")
    req["context"]["patientId"] = "p1/../../../admin/delete?all=1&x="
    del req["prefetch"]["conditions"]
    req["fhirServer"] = "http://127.0.0.1:9/fhir"
    r = dev_client.post(PV, json=req)
    assert r.status_code == 422
    assert r.json()["details"][0]["field"] == "context.patientId"


@pytest.mark.parametrize("dots", [".", "..", "..."])
def test_a_patient_id_of_dots_alone_is_refused(dev_client, dots):
    """'.' and '..' match the FHIR id pattern, but in a URL they are path segments: Patient/.. read
    the server's base, and Patient/. a search of every patient, with the EHR's token."""
    req = patient_view_request("01-aml-leukostasis.yaml")
    req["context"]["patientId"] = dots
    del req["prefetch"]["patient"]
    req["fhirServer"] = "http://127.0.0.1:9/fhir"
    r = dev_client.post(PV, json=req)
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "context.patientId"
