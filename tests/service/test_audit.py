"""The audit trail: one FHIR AuditEvent per call, hash-chained, without tokens or patient ids."""

from __future__ import annotations

import json

from leukos.service.audit import AuditLog, AuditRecord, verify_chain

from .conftest import BASE, mint


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_call_is_audited_and_the_chain_verifies(secure_client, secure_settings, client_key):
    secure_client.get("/api/health")
    secure_client.get("/cds-services", headers={"Authorization": f"Bearer {mint(client_key, aud=BASE + '/cds-services')}"})
    secure_client.get("/cds-services")  # refused: audited too
    secure_client.post("/api/assess", content=b"x" * 2_000_000)  # refused for size: audited too
    rows = _lines(secure_settings.audit_log_path)
    assert [r["event"]["extension"][0]["valueString"] for r in rows] == [
        "GET /api/health 200", "GET /cds-services 200", "GET /cds-services 401", "POST /api/assess 413"]
    assert rows[1]["event"]["agent"][0]["who"]["display"] == "https://ehr.example.org/"
    assert [r["event"]["outcome"] for r in rows] == ["0", "0", "4", "4"]
    assert all(r["event"]["resourceType"] == "AuditEvent" for r in rows)
    assert verify_chain(rows) is None


def test_tampering_breaks_the_chain(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl")
    for i in range(3):
        log.append(AuditRecord("GET", f"/x{i}", 200, "tester", None))
    rows = _lines(tmp_path / "a.jsonl")
    rows[1]["event"]["outcome"] = "8"
    assert verify_chain(rows) == 1
    rows = _lines(tmp_path / "a.jsonl")
    del rows[0]
    assert verify_chain(rows) == 0


def test_chain_continues_across_restarts(tmp_path):
    AuditLog(tmp_path / "a.jsonl").append(AuditRecord("GET", "/a", 200, "t", None))
    AuditLog(tmp_path / "a.jsonl").append(AuditRecord("GET", "/b", 200, "t", None))
    assert verify_chain(_lines(tmp_path / "a.jsonl")) is None


def test_no_token_and_no_patient_id_in_the_audit(secure_client, secure_settings, client_key):
    token = mint(client_key, aud=BASE + "/cds-services/leukos-patient-view")
    body = {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "fhirServer": "http://127.0.0.1:9/fhir",  # loopback discard port: refused, never the network
            "fhirAuthorization": {"access_token": "SECRET-FHIR-TOKEN", "token_type": "Bearer", "expires_in": 300,
                                  "scope": "patient/*.read", "subject": "leukos"},
            "context": {"userId": "Practitioner/1", "patientId": "PATIENT-MRN-123456"}, "prefetch": {}}
    secure_client.post("/cds-services/leukos-patient-view", json=body, headers={"Authorization": f"Bearer {token}"})
    text = secure_settings.audit_log_path.read_text()
    assert "SECRET-FHIR-TOKEN" not in text and token not in text
    assert "PATIENT-MRN-123456" not in text
