"""Issue 11 probes on state, audit, audience, SSRF, privacy, degradation, load and docs — each kept as a
regression test with its new result."""

from __future__ import annotations

import json
import logging
import os
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from leukos.errors import LeukosUserError
from leukos.service.app import create_app
from leukos.service.audit import AuditLog, AuditLogCorrupt, AuditRecord, verify_chain
from leukos.service.engines import Engines
from leukos.service.settings import ServiceSettings

from .conftest import BASE, EXAMPLES, ISSUER, Client, mint, needs_engine, needs_fhir
from .fhir_data import PATIENT_ID, patient_view_request

PV = "/cds-services/leukos-patient-view"
CASE = (EXAMPLES / "01-aml-leukostasis.yaml").read_bytes()


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _dev(tmp_path, **kw) -> Client:
    return Client(create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES,
                                             audit_log_path=tmp_path / "audit.jsonl", **kw)))


# -- Audit trail ------------------------------------------------------------------------------------

def test_audit_write_failure_fails_closed_503_and_the_result_is_not_sent(tmp_path):
    c = _dev(tmp_path)
    audit = c.app.state.leukos.audit
    audit.close()
    audit._fd = os.open(tmp_path / "audit.jsonl", os.O_RDONLY)  # writes now fail with EBADF
    r = c.post("/api/assess", content=CASE)
    assert r.status_code == 503
    assert r.json()["error"] == "AuditUnavailable" and "hyperleukocytosis" not in r.text


@needs_engine()
def test_refused_and_failed_calls_are_audited(tmp_path):
    def broken(case, kb):
        raise RuntimeError("bug")
    c = Client(create_app(ServiceSettings(auth_disabled=True, audit_log_path=tmp_path / "a.jsonl"),
                          engines=Engines(assess_fn=broken)))
    assert c.post("/api/assess", content=b"{").status_code == 422
    assert c.post("/api/assess", content=CASE).status_code == 500
    rows = _lines(tmp_path / "a.jsonl")
    assert [r["event"]["extension"][0]["valueString"] for r in rows] == ["POST /api/assess 422",
                                                                          "POST /api/assess 500"]
    assert verify_chain(rows) is None


def test_truncated_last_line_is_quarantined_and_the_chain_continues(tmp_path, caplog):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(3):
        log.append(AuditRecord("GET", f"/x{i}", 200, "t", None))
    log.close()
    text = path.read_text()
    path.write_text(text + text.splitlines()[-1][:37])  # a crash mid-write
    with caplog.at_level(logging.WARNING, logger="leukos.service"):
        c = Client(create_app(ServiceSettings(auth_disabled=True, audit_log_path=path)))
    assert any("incomplete" in r.getMessage() and "quarantine" in r.getMessage() for r in caplog.records)
    quarantined = list(tmp_path.glob("audit.jsonl.quarantine-*"))
    assert len(quarantined) == 1 and len(quarantined[0].read_bytes()) == 37
    c.get("/api/health")
    rows = _lines(path)
    assert len(rows) == 4 and verify_chain(rows) is None


def test_audit_file_edited_in_the_middle_refuses_to_start(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(3):
        log.append(AuditRecord("GET", f"/x{i}", 200, "t", None))
    log.close()
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"/x1 200"', '"/x9 200"').replace("GET /x1", "GET /x9")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AuditLogCorrupt, match="line 2"):
        create_app(ServiceSettings(auth_disabled=True, audit_log_path=path))


@needs_engine()
@needs_fhir()
def test_pseudonym_key_persists_across_restarts_and_can_be_configured(tmp_path):
    data = tmp_path / "data"

    def pseudonym(**kw):
        c = _dev(tmp_path, data_dir=data, **kw)
        assert c.post(PV, json=patient_view_request("01-aml-leukostasis.yaml")).status_code == 200
        ent = c.app.state.leukos.audit.records[-1]["event"]["entity"][0]["what"]["identifier"]["value"]
        c.app.state.leukos.audit.close()
        return ent

    first, second = pseudonym(), pseudonym()
    assert first == second and PATIENT_ID not in first
    assert oct((data / "audit-pseudonym.key").stat().st_mode & 0o777) == "0o600"
    assert pseudonym(audit_key="ab" * 32) != first


# -- Audience, replay, feedback ----------------------------------------------------------------------

def test_non_dev_refuses_to_start_without_public_base_url_or_data_dir(tmp_path):
    with pytest.raises(LeukosUserError) as exc:
        create_app(ServiceSettings(trusted_issuers=(ISSUER,)))
    assert {d.field for d in exc.value.details} == {"LEUKOS_PUBLIC_BASE_URL", "LEUKOS_DATA_DIR"}


def test_token_for_another_service_with_a_spoofed_host_is_refused(secure_client, client_key):
    token = mint(client_key, aud="https://other-service.example.org/cds-services")
    r = secure_client.get("/cds-services", headers={"Authorization": f"Bearer {token}",
                                                    "Host": "other-service.example.org"})
    assert r.status_code == 401 and "aud" in r.json()["title"]


def test_jti_replay_store_survives_a_restart(secure_settings, jwks, client_key):
    token = mint(client_key, aud=BASE + "/cds-services", jti="used-before-the-crash")
    first = Client(create_app(secure_settings, jwks=jwks))
    assert first.get("/cds-services", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    first.app.state.leukos.audit.close()
    again = Client(create_app(secure_settings, jwks=jwks))
    r = again.get("/cds-services", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "replay" in r.json()["title"]


def test_feedback_survives_a_restart_and_stays_idempotent(tmp_path):
    fb = {"feedback": [{"card": "4e0a3a1e-3283-4575-ab82-028d55fe2719", "outcome": "accepted",
                        "outcomeTimestamp": "2026-03-01T08:00:00Z"}]}
    c1 = _dev(tmp_path, data_dir=tmp_path / "data")
    assert c1.post(f"{PV}/feedback", json=fb).json()["new"] == 1
    c1.app.state.leukos.audit.close()
    c2 = _dev(tmp_path, data_dir=tmp_path / "data")
    assert c2.post(f"{PV}/feedback", json=fb).json()["new"] == 0
    assert len(c2.app.state.leukos.feedback) == 1


# -- SSRF, privacy, degradation ------------------------------------------------------------------

@needs_engine()
@needs_fhir()
def test_optional_prefetch_unreadable_degrades_to_cards_with_a_note(tmp_path):
    dead = "http://127.0.0.1:9/fhir"  # allowed but nothing listens: connection refused
    c = _dev(tmp_path, fhir_server_allowlist=(dead,), fhir_timeout_s=2)
    req = patient_view_request("01-aml-leukostasis.yaml")
    del req["prefetch"]["conditions"], req["prefetch"]["meds"]
    req["fhirServer"] = dead
    r = c.post(PV, json=req)
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    assert cards and all("Not everything could be assessed" in c["detail"] and "Not read:" in c["detail"] for c in cards)
    assert any("conditions" in c["detail"] and "medications" in c["detail"] for c in cards)


@needs_engine()
@needs_fhir()
def test_without_labs_nothing_can_be_said_412(tmp_path):
    c = _dev(tmp_path)
    req = patient_view_request("01-aml-leukostasis.yaml")
    del req["prefetch"]["labs"]
    r = c.post(PV, json=req)
    assert r.status_code == 412 and r.json()["details"][0]["field"] == "prefetch.labs"


@needs_engine()
@needs_fhir()
def test_fhir_server_off_the_allow_list_is_not_contacted(tmp_path):
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        c = _dev(tmp_path)
        req = patient_view_request("01-aml-leukostasis.yaml")
        del req["prefetch"]["conditions"]
        req["fhirServer"] = f"http://127.0.0.1:{port}/admin"
        req["fhirAuthorization"] = {"access_token": "EHR-TOKEN", "token_type": "Bearer", "expires_in": 60,
                                    "scope": "patient/*.read", "subject": "leukos"}
        r = c.post(PV, json=req)
        assert r.status_code == 200
        assert "allow-list" in r.json()["cards"][0]["detail"]
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing connected: no probe, no token sent
    finally:
        listener.close()


@contextmanager
def _tiny_fhir_server():
    """A loopback HTTP server answering every GET with an empty searchset Bundle."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/fhir"
    finally:
        server.shutdown()
        server.server_close()


@needs_engine()
@needs_fhir()
def test_no_patient_id_in_any_log_line(tmp_path, caplog):
    with _tiny_fhir_server() as base:
        c = _dev(tmp_path, fhir_server_allowlist=(base,))
        req = patient_view_request("01-aml-leukostasis.yaml")
        del req["prefetch"]["conditions"], req["prefetch"]["meds"]
        req["fhirServer"] = base
        with caplog.at_level(logging.DEBUG):
            r = c.post(PV, json=req)
    assert r.status_code == 200, r.text
    assert caplog.records  # the service did log (start-up lines), just not the patient
    assert PATIENT_ID not in caplog.text


def test_a_bug_is_500_in_the_common_shape_and_its_message_is_not_logged(tmp_path, caplog):
    def leaky(case, kb):
        raise ValueError("patient born " + "-".join(("1970", "05", "31")))  # a plain ValueError is a bug
    c = Client(create_app(ServiceSettings(auth_disabled=True), engines=Engines(assess_fn=leaky)))
    with caplog.at_level(logging.ERROR):
        r = c.post("/api/assess", content=CASE)
    assert r.status_code == 500 and r.json()["error"] == "InternalError"
    assert "1970-05-31" not in caplog.text and "1970-05-31" not in r.text
    assert "ValueError" in caplog.text  # the developers still get the kind and the frames


# -- Load: the event loop stays free, work is bounded ----------------------------------------------

@needs_engine()
def test_a_stuck_computation_gets_503_retry_after_and_health_still_answers(tmp_path):
    release = threading.Event()

    def stuck(case, kb):
        release.wait(30)
        raise RuntimeError("released")

    c = Client(create_app(ServiceSettings(auth_disabled=True, request_timeout_s=0.3, api_workers=1, work_queue=0),
                          engines=Engines(assess_fn=stuck)))
    try:
        r = c.post("/api/assess", content=CASE)
        assert r.status_code == 503 and r.json()["error"] == "ServiceBusy"
        assert int(r.headers["Retry-After"]) >= 1
        # the worker is still stuck: the next call is refused at once, health answers from the loop
        busy = c.post("/api/assess", content=CASE)
        assert busy.status_code == 503 and "busy" in busy.json()["title"]
        assert c.get("/api/health").status_code == 200
    finally:
        release.set()


# -- API docs ------------------------------------------------------------------------------------

def test_docs_need_the_token_outside_dev_and_use_vendored_assets(secure_client):
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert secure_client.get(path).status_code == 401, path
    auth = {"Authorization": "Bearer s3cret-api-token-for-tests"}
    for path, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        r = secure_client.get(path, headers=auth)
        assert r.status_code == 200 and asset in r.text
        assert "cdn" not in r.text.lower() and "unpkg" not in r.text
        src = r.text.split('src="')[1].split('"')[0]
        assert secure_client.get(src).status_code == 200
    spec = secure_client.get("/openapi.json", headers=auth).json()
    assert "CdsRequest" in spec["components"]["schemas"]
