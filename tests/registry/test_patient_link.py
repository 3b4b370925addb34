"""FHIR input stored on a registered patient must be about that patient; one patient per FHIR id.

A Bundle about another patient (its Patient resource, or Observations whose subject is someone else,
or Observations without a subject) was stored on the patient named in the URL; two patients could
share a FHIR id, and the CDS follow-up card then showed one of them, picked by the database.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging

import pytest
from sqlalchemy import text

from leukos.knowledge import load_knowledge
from leukos.registry import RegistrySettings
from leukos.registry.db import make_engine, upgrade
from leukos.registry.store import Registry
from leukos.service.app import create_app
from leukos.service.settings import ServiceSettings
from tests.conftest import EXAMPLES
from tests.service.conftest import Client

from .records import PATIENT

TOKEN = "registry-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OWN = "pat-aml-01"  # the Patient id of examples/fhir-bundle-aml.json
OTHER = {"pseudonym": "LK-0002", "mrn": "MRN-OTHER-55", "sex": "female", "age_years": 40, "weight_kg": 60,
         "height_cm": 165, "diagnosis": "ALL", "ward": "H5"}


@pytest.fixture
def client(tmp_path) -> Client:
    a = create_app(ServiceSettings(api_token=TOKEN, audit_log_path=tmp_path / "audit.jsonl", examples_dir=EXAMPLES,
                                   public_base_url="http://testserver", data_dir=tmp_path / "service"))
    a.state.registry_settings = RegistrySettings(data_dir=tmp_path / "data")
    return Client(a)


def _bundle() -> dict:
    return json.loads((EXAMPLES / "fhir-bundle-aml.json").read_text())


def _observations_only(b: dict) -> dict:
    b = copy.deepcopy(b)
    b["entry"] = [e for e in b["entry"] if e["resource"]["resourceType"] == "Observation"]
    return b


def _register(client, fhir_id: str | None = "pat-A") -> None:
    body = PATIENT if fhir_id is None else PATIENT | {"fhir_patient_id": fhir_id}
    assert client.post("/api/patients", json=body, headers=AUTH).status_code == 201


def _labs(client) -> int:
    return len(client.get("/api/patients/LK-0001", headers=AUTH).json()["labs"])


def _refused(r, field_part: str) -> list[dict]:
    assert r.status_code == 422, r.text
    details = r.json()["details"]
    assert details and all({"field", "value", "expected", "fix"} <= set(d) for d in details)
    assert any(field_part in d["field"] for d in details), details
    return details


def test_a_bundle_about_another_patient_is_refused_and_nothing_stored(client):
    _register(client)  # LK-0001 is pat-A; the example Bundle is pat-aml-01's
    d = _refused(client.post("/api/patients/LK-0001/labs/fhir", json=_bundle(), headers=AUTH), "entry[0].resource.id")
    assert d[0]["value"] == OWN and "pat-A" in d[0]["expected"]
    assert _labs(client) == 0


def test_observations_naming_another_patient_or_no_patient_are_refused(client):
    _register(client)
    other = _observations_only(_bundle())  # subject Patient/pat-aml-01, no Patient resource
    d = _refused(client.post("/api/patients/LK-0001/labs/fhir", json=other, headers=AUTH), ".subject.reference")
    assert d[0]["value"] == f"Patient/{OWN}"
    mixed = copy.deepcopy(other)
    for e in mixed["entry"][1:]:
        e["resource"]["subject"] = {"reference": "Patient/pat-A"}
    d = _refused(client.post("/api/patients/LK-0001/labs/fhir", json=mixed, headers=AUTH), "entry[0].resource.subject")
    assert len(d) == 1
    none = copy.deepcopy(other)
    for e in none["entry"]:
        e["resource"].pop("subject")
    d = _refused(client.post("/api/patients/LK-0001/labs/fhir", json=none, headers=AUTH), ".subject")
    assert d[0]["value"] is None and "cannot be confirmed" in d[0]["fix"]
    assert _labs(client) == 0


def test_this_patients_bundle_is_imported_relative_or_absolute_reference(client):
    _register(client, OWN)
    b = _bundle()
    for e in b["entry"][1:]:
        if e["resource"].get("subject"):
            e["resource"]["subject"]["reference"] = f"https://ehr.example/fhir/Patient/{OWN}"
    r = client.post("/api/patients/LK-0001/labs/fhir", json=b, headers=AUTH)
    assert r.status_code == 201 and r.json()["added"] > 0


def test_a_patient_without_a_fhir_id_gets_no_bundle_until_the_id_is_recorded(client):
    _register(client, None)
    d = _refused(client.post("/api/patients/LK-0001/labs/fhir", json=_bundle(), headers=AUTH), "fhir_patient_id")
    assert "PATCH /api/patients/LK-0001" in d[0]["fix"]
    assert _labs(client) == 0
    r = client.request("PATCH", "/api/patients/LK-0001", json={"version": 1, "fhir_patient_id": OWN}, headers=AUTH)
    assert r.status_code == 200 and r.json()["fhir_patient_id"] == OWN
    assert client.post("/api/patients/LK-0001/labs/fhir", json=_bundle(), headers=AUTH).status_code == 201


@pytest.mark.parametrize("kind", ["assessments", "plans"])
def test_an_assessment_or_plan_of_another_patients_bundle_is_refused(client, kind):
    _register(client)
    _refused(client.post(f"/api/patients/LK-0001/{kind}", json=_bundle(), headers=AUTH), "entry[0].resource.id")
    assert client.get("/api/patients/LK-0001", headers=AUTH).json()["issued"] == []


def test_a_fhir_id_registered_for_another_patient_is_refused_without_naming_them(client):
    _register(client, OWN)
    r = client.post("/api/patients", json=OTHER | {"fhir_patient_id": OWN}, headers=AUTH)
    assert r.status_code == 409 and r.json()["details"][0]["field"] == "fhir_patient_id"
    assert "LK-0001" not in r.text and PATIENT["mrn"] not in r.text
    assert client.post("/api/patients", json=OTHER, headers=AUTH).status_code == 201
    r = client.request("PATCH", "/api/patients/LK-0002", json={"version": 1, "fhir_patient_id": OWN}, headers=AUTH)
    assert r.status_code == 409 and r.json()["details"][0]["field"] == "fhir_patient_id" and "LK-0001" not in r.text
    assert client.get("/api/patients/LK-0002", headers=AUTH).json()["patient"]["fhir_patient_id"] is None
    # the patient's own id again, and a change to a free id, are fine
    r = client.request("PATCH", "/api/patients/LK-0001", json={"version": 1, "fhir_patient_id": OWN}, headers=AUTH)
    assert r.status_code == 200
    r = client.request("PATCH", "/api/patients/LK-0002", json={"version": 1, "fhir_patient_id": "pat-B"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["fhir_patient_id"] == "pat-B"


def test_a_fhir_id_that_no_cds_call_could_send_is_refused(client):
    for bad in ("Patient/pat-A", "https://ehr.example/Patient/1", "MRN 7734129", "x" * 65):
        r = client.post("/api/patients", json=PATIENT | {"fhir_patient_id": bad}, headers=AUTH)
        assert r.status_code == 422 and r.json()["details"][0]["field"].endswith("fhir_patient_id"), bad


def test_lookup_of_a_shared_fhir_id_in_an_old_database_picks_no_one(tmp_path, caplog):
    """A database from before the unique index may hold two patients with one FHIR id: the CDS card's
    lookup gives no patient (never one picked by the database) and logs why, without identifiers."""
    engine = make_engine(RegistrySettings(data_dir=tmp_path / "data"))
    upgrade(engine, "0002")
    with engine.begin() as c:
        for pseudonym, mrn in (("LK-A", "MRN-111"), ("LK-B", "MRN-222")):
            c.execute(text("INSERT INTO patients (pseudonym, mrn, fhir_patient_id, active, created_at, version) "
                           "VALUES (:p, :m, 'pat-1', 1, :t, 1)"), {"p": pseudonym, "m": mrn,
                                                                  "t": dt.datetime(2026, 12, 1)})
    reg = Registry(engine, load_knowledge())
    with caplog.at_level(logging.WARNING):
        assert reg.find_by_fhir_id("pat-1") is None
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "more than one" in logged
    assert not any(x in logged for x in ("LK-A", "LK-B", "MRN-111", "pat-1"))
    engine.dispose()
