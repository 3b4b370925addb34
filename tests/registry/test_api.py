"""REST /api/patients: authentication, audit, 404/409/422 naming the field, FHIR out and in, CDS card."""

from __future__ import annotations

import json

import pytest

from leukos.registry import RegistrySettings
from leukos.service.app import create_app
from leukos.service.settings import ServiceSettings
from tests.conftest import EXAMPLES
from tests.service.conftest import Client
from tests.service.fhir_data import PATIENT_ID, patient_view_request

from .records import PATIENT, iso, procedure

TOKEN = "registry-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AML_BUNDLE_PATIENT = "pat-aml-01"  # the Patient id of examples/fhir-bundle-aml.json


@pytest.fixture
def app(tmp_path):
    a = create_app(ServiceSettings(api_token=TOKEN, audit_log_path=tmp_path / "audit.jsonl", examples_dir=EXAMPLES,
                                   public_base_url="http://testserver", data_dir=tmp_path / "service"))
    a.state.registry_settings = RegistrySettings(data_dir=tmp_path / "data")
    return a


@pytest.fixture
def client(app) -> Client:
    return Client(app)


def _audit(tmp_path) -> list[dict]:
    return [json.loads(x)["event"] for x in (tmp_path / "audit.jsonl").read_text().splitlines()]


def test_every_call_needs_authentication(client):
    for method, url in (("GET", "/api/patients"), ("POST", "/api/patients"), ("GET", "/api/patients/LK-0001"),
                        ("GET", "/api/patients/LK-0001/follow-up"), ("POST", "/api/patients/LK-0001/procedures"),
                        ("GET", "/api/patients/LK-0001/fhir"), ("GET", "/ui/patients")):
        r = client.request(method, url, json={})
        assert r.status_code == 401, (method, url)


def test_record_read_and_audit(client, tmp_path):
    assert client.post("/api/patients", json=PATIENT, headers=AUTH).status_code == 201
    r = client.post("/api/patients/LK-0001/procedures", json=procedure(), headers=AUTH)
    assert r.status_code == 201 and r.json()["version"] == 1
    t = client.get("/api/patients/LK-0001", headers=AUTH).json()
    assert t["procedures"][0]["post_wbc"]["value"] == 195 and "mrn" not in t["patient"]
    f = client.get("/api/patients/LK-0001/follow-up", headers=AUTH).json()
    assert f["sessions"][0]["observed_fall_pct"] == 22.0
    events = _audit(tmp_path)
    subtypes = [e.get("subtype", [{}])[0].get("code") for e in events]
    assert subtypes == ["registry-write", "registry-write", "registry-read", "registry-read"]
    assert all("MRN-7734129" not in json.dumps(e) for e in events)
    assert all(e["entity"] for e in events)  # the patient is named (pseudonymised) in each event


def test_errors_are_4xx_naming_the_field(client):
    assert client.get("/api/patients/NOBODY", headers=AUTH).status_code == 404
    client.post("/api/patients", json=PATIENT, headers=AUTH)
    r = client.post("/api/patients/LK-0001/procedures", json=procedure(volume_processed_l=900), headers=AUTH)
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "volume_processed_l"
    r = client.post("/api/patients/LK-0001/labs", json=[{"analyte": "wbcx", "value": 1, "taken_at": iso(0)}], headers=AUTH)
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "labs[0].analyte"
    r = client.post("/api/patients/LK-0001/procedures", json=procedure() | {"started_at": "yesterday"}, headers=AUTH)
    assert r.status_code == 422 and "started_at" in r.json()["details"][0]["field"]
    r = client.post("/api/patients/NOBODY/procedures", json=procedure(), headers=AUTH)
    assert r.status_code == 404 and r.json()["details"][0]["field"] == "patient"
    assert client.get("/api/patients/LK-0001", headers=AUTH).json()["procedures"] == []


def test_stale_version_is_409(client):
    client.post("/api/patients", json=PATIENT, headers=AUTH)
    pid = client.post("/api/patients/LK-0001/procedures", json=procedure(), headers=AUTH).json()["id"]
    url = f"/api/patients/LK-0001/procedures/{pid}"
    assert client.request("PUT", url, json=procedure(post=180) | {"version": 1}, headers=AUTH).status_code == 200
    r = client.request("PUT", url, json=procedure(post=170) | {"version": 1}, headers=AUTH)
    assert r.status_code == 409 and r.json()["details"][0]["field"] == "version"


def test_openapi_lists_the_registry(client):
    paths = client.get("/openapi.json", headers=AUTH).json()["paths"]  # the API docs need the token
    assert {"/api/patients", "/api/patients/{pseudonym}", "/api/patients/{pseudonym}/procedures",
            "/api/patients/{pseudonym}/follow-up", "/api/patients/{pseudonym}/fhir"} <= set(paths)


def test_fhir_export_validates_and_fhir_import_is_idempotent(client):
    from fhir.resources.R4B.bundle import Bundle

    client.post("/api/patients", json=PATIENT | {"fhir_patient_id": AML_BUNDLE_PATIENT}, headers=AUTH)
    client.post("/api/patients/LK-0001/procedures", json=procedure(), headers=AUTH)
    bundle = json.loads((EXAMPLES / "fhir-bundle-aml.json").read_text())
    first = client.post("/api/patients/LK-0001/labs/fhir", json=bundle, headers=AUTH).json()
    again = client.post("/api/patients/LK-0001/labs/fhir", json=bundle, headers=AUTH).json()
    assert first["added"] > 0 and again == first | {"added": 0, "already_present": first["added"]}
    r = client.get("/api/patients/LK-0001/fhir", headers=AUTH)
    assert r.headers["content-type"].startswith("application/fhir+json")
    b = Bundle.model_validate(r.json())
    kinds = [e.resource.get_resource_type() for e in b.entry]
    assert kinds.count("Patient") == 1 and kinds.count("Procedure") == 1 and kinds.count("AdverseEvent") == 1
    assert kinds.count("Observation") == len(client.get("/api/patients/LK-0001", headers=AUTH).json()["labs"])
    assert "MRN-7734129" not in r.text
    proc = next(e.resource for e in b.entry if e.resource.get_resource_type() == "Procedure")
    assert proc.performedPeriod.start.isoformat().startswith("2026-12-01T08:00")


def test_patient_view_card_from_the_registry(tmp_path):
    app = create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES, audit_log_path=tmp_path / "a.jsonl"))
    app.state.registry_settings = RegistrySettings(data_dir=tmp_path / "data")
    c = Client(app)
    body = patient_view_request("01-aml-leukostasis.yaml")
    before = c.post("/cds-services/leukos-patient-view", json=body).json()["cards"]
    assert not any("follow-up" in x["summary"].lower() or "session" in x["summary"].lower() for x in before)
    c.post("/api/patients", json=PATIENT | {"fhir_patient_id": PATIENT_ID})
    c.post("/api/patients/LK-0001/procedures", json=procedure(post=None))
    cards = c.post("/cds-services/leukos-patient-view", json=body).json()["cards"]
    reg = [x for x in cards if "leukapheresis follow-up" in x["detail"].lower()]
    assert len(reg) == 1
    assert "Post-session count not recorded" in reg[0]["summary"] and reg[0]["indicator"] == "warning"
    assert reg[0]["links"][0]["url"].endswith("/ui/patients/LK-0001")
    assert "{" not in reg[0]["summary"]


def test_cds_feedback_survives_a_restart(tmp_path):
    def make():
        a = create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES))
        a.state.registry_settings = RegistrySettings(data_dir=tmp_path / "data")
        return Client(a)

    fb = {"feedback": [{"card": "9b3a7e1c-0000-4000-8000-000000000001", "outcome": "overridden",
                        "outcomeTimestamp": "2026-12-01T10:00:00Z",
                        "overrideReasons": [{"reason": {"code": "not-relevant", "display": "Not relevant"}}]}]}
    assert make().post("/cds-services/leukos-patient-view/feedback", json=fb).status_code == 200
    app2 = make()
    r = app2.post("/cds-services/leukos-patient-view/feedback", json=fb).json()
    assert r["new"] == 0  # already stored by the first process
    assert app2.app.state.leukos.feedback.__len__() == 1


def test_assessment_and_plan_are_stored_as_issued(client):
    import yaml

    client.post("/api/patients", json=PATIENT, headers=AUTH)
    case = json.loads(json.dumps(yaml.safe_load(sorted(EXAMPLES.glob("01-*.yaml"))[0].read_text()), default=str))
    a = client.post("/api/patients/LK-0001/assessments", json=case, headers=AUTH)
    p = client.post("/api/patients/LK-0001/plans", json=case, headers=AUTH)
    assert a.status_code == 201 and p.status_code == 201
    issued = client.get("/api/patients/LK-0001", headers=AUTH).json()["issued"]
    assert [(i["kind"], i["ruleset_version"]) for i in issued] == [("assessment", a.json()["assessment"]["ruleset_version"]),
                                                                  ("plan", p.json()["plan"]["ruleset_version"])]
    assert client.post("/api/patients/NOBODY/assessments", json=case, headers=AUTH).status_code == 404


def test_patient_view_still_answers_when_the_registry_database_is_down(tmp_path):
    app = create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES, audit_log_path=tmp_path / "a.jsonl"))
    # a PostgreSQL URL on a closed loopback port: nothing listens there
    from .pg import free_port

    app.state.registry_settings = RegistrySettings(
        data_dir=tmp_path / "x", database_url=f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2")
    r = Client(app).post("/cds-services/leukos-patient-view", json=patient_view_request("01-aml-leukostasis.yaml"))
    assert r.status_code == 200 and r.json()["cards"]


def test_patient_view_still_answers_when_the_registry_lookup_fails(tmp_path):
    """The registry is there but its lookup fails (here: the table is gone): the other cards still come,
    without the follow-up card; the failure is the database's, never a 500."""
    from sqlalchemy import text

    from leukos.service.registry_api import registry_of

    app = create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES, audit_log_path=tmp_path / "a.jsonl"))
    app.state.registry_settings = RegistrySettings(data_dir=tmp_path / "data")
    with registry_of(app).engine.begin() as c:
        c.execute(text("PRAGMA foreign_keys=OFF"))
        c.execute(text("DROP TABLE patients"))
    r = Client(app).post("/cds-services/leukos-patient-view", json=patient_view_request("01-aml-leukostasis.yaml"))
    assert r.status_code == 200 and r.json()["cards"]
    assert not any("leukapheresis follow-up" in (x.get("detail") or "").lower() for x in r.json()["cards"])


def test_a_procedure_overlapping_a_recorded_one_is_refused(client):
    """The same form sent twice stored two identical sessions (the follow-up then counted the fall
    twice), and a run inside another run was accepted. Both are 409 naming the time; nothing stored.
    The next day's session and a correction of the procedure itself are accepted."""
    client.post("/api/patients", json=PATIENT, headers=AUTH)
    first = client.post("/api/patients/LK-0001/procedures", json=procedure(), headers=AUTH)
    assert first.status_code == 201
    for again in (procedure(), procedure(started_at=iso(1), ended_at=iso(2), run_time_min=60)):
        r = client.post("/api/patients/LK-0001/procedures", json=again, headers=AUTH)
        assert r.status_code == 409, r.text
        d = r.json()["details"][0]
        assert d["field"] == "started_at" and "already recorded" in r.json()["title"] and "correct the record" in d["fix"]
    assert client.post("/api/patients/LK-0001/procedures", json=procedure(day=1), headers=AUTH).status_code == 201
    url = f"/api/patients/LK-0001/procedures/{first.json()['id']}"
    assert client.request("PUT", url, json=procedure(post=180) | {"version": 1}, headers=AUTH).status_code == 200
    assert len(client.get("/api/patients/LK-0001", headers=AUTH).json()["procedures"]) == 2


@pytest.mark.parametrize("path", ["/api/patients", "/api/patients/LK-0001/labs", "/api/patients/LK-0001/assessments",
                                  "/api/patients/LK-0001/procedures"])
@pytest.mark.parametrize("body, says", [("[" * 100_000 + "]" * 100_000, "levels of nesting"),
                                        ('{"a": ' * 5000 + "1" + "}" * 5000, "levels of nesting")])
def test_a_body_too_deep_to_parse_is_named_not_a_bare_400(client, path, body, says):
    """A deeply nested JSON body sent to a registry route was answered 400 "There was an error parsing
    the body" with no detail: not the field, value, expectation and fix every other route gives."""
    client.post("/api/patients", json=PATIENT, headers=AUTH)
    r = client.post(path, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text[:300]
    got = r.json()
    assert got["title"] == "The request body cannot be read"
    d = got["details"][0]
    assert d["field"] == "body" and says in d["value"] and d["expected"] and d["fix"]


def test_registry_computations_are_bounded_and_timed_like_the_rest_of_the_api(tmp_path):
    """The registry's assessment and plan routes ran in the web framework's own threads: no bound on how
    many at once and no wall time, beside the REST API's pool. They now share that pool: a stuck one is
    answered 503 with Retry-After and, with the pool full, the next is refused at once."""
    import threading

    from leukos.service.engines import Engines

    release = threading.Event()

    def stuck(case, kb):
        release.wait(5)
        raise RuntimeError("released")

    a = create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES, request_timeout_s=0.3, api_workers=1,
                                   work_queue=0, audit_log_path=tmp_path / "a.jsonl"), engines=Engines(assess_fn=stuck))
    a.state.registry_settings = RegistrySettings(data_dir=tmp_path / "data")
    c = Client(a)
    try:
        assert c.post("/api/patients", json=PATIENT).status_code == 201
        case = {"format": "leukos-case/1", "labs": {"wbc": 250}}
        for path in ("/api/patients/LK-0001/assessments", "/api/patients/LK-0001/plans"):
            r = c.post(path, json=case)
            assert r.status_code == 503 and r.json()["error"] == "ServiceBusy", (path, r.text[:200])
            assert int(r.headers["Retry-After"]) >= 1
    finally:
        release.set()
