"""The FHIR lab import says what it left out; a bound ('>5') is never stored as an exact value; a
405 has the service's common error shape."""

from __future__ import annotations

import copy
import json

import pytest

from leukos.registry import RegistrySettings
from leukos.service.app import create_app
from leukos.service.settings import ServiceSettings
from tests.conftest import EXAMPLES
from tests.service.conftest import Client

from .records import PATIENT


@pytest.fixture
def client(tmp_path) -> Client:
    a = create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES, audit_log_path=tmp_path / "a.jsonl"))
    a.state.registry_settings = RegistrySettings(data_dir=tmp_path / "data")
    c = Client(a)
    assert c.post("/api/patients", json=PATIENT | {"fhir_patient_id": "pat-aml-01"}).status_code == 201
    return c


def test_the_importers_notes_are_returned_and_a_bound_is_not_stored_as_exact(client):
    b = json.loads((EXAMPLES / "fhir-bundle-aml.json").read_text())
    obs = [e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Observation"]
    obs[0]["status"] = "entered-in-error"
    obs[1]["code"]["coding"][0]["code"] = "2345-7"  # glucose: not used by leukos
    obs[2]["valueQuantity"] = {"value": 5, "comparator": ">", "unit": "10*3/uL", "system": "http://unitsofmeasure.org",
                               "code": "10*3/uL"}
    r = client.post("/api/patients/LK-0001/labs/fhir", json=copy.deepcopy(b))
    assert r.status_code == 201
    notes = r.json()["notes"]
    assert any(f"Observation/{obs[0]['id']}: status entered-in-error; ignored" == n for n in notes)
    assert any("2345-7" in n and "skipped" in n for n in notes)
    bound = [n for n in notes if n.startswith(f"Observation/{obs[2]['id']}:")]
    assert len(bound) == 1 and ">5" in bound[0] and "not imported" in bound[0]
    wbc = [lab for lab in client.get("/api/patients/LK-0001").json()["labs"] if lab["analyte"] == "wbc"]
    assert not any(lab["value"] == 5 for lab in wbc)  # not kept as an exact 5 x10^9/L


@pytest.mark.parametrize(("method", "url", "allow"), [("DELETE", "/api/patients", "GET, POST"),
                                                      ("DELETE", "/api/patients/LK-0001", "GET, PATCH")])
def test_a_405_is_in_the_common_error_shape(client, method, url, allow):
    r = client.request(method, url)
    assert r.status_code == 405 and r.headers["allow"] == allow
    body = r.json()
    assert body["error"] == "MethodNotAllowed" and body["title"]
    d = body["details"][0]
    assert d["field"] == "(method)" and d["value"] == method and allow in d["expected"] and d["fix"]
