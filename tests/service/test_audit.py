"""The audit trail: one FHIR AuditEvent per call, hash-chained, without tokens or patient ids."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from leukos.service.audit import AuditLog, AuditRecord, _canonical, verify_chain

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


# -- The event's canonical JSON is written directly (AuditLog.event_json): same bytes as encoding the dict

def _reference_event(log: AuditLog, rec: AuditRecord, event_id: str, recorded: str) -> dict:
    """The AuditEvent of a record, built as a dict field by field (the shape event_json writes)."""
    def clean(text):
        return None if text is None else text.encode("utf-8", "backslashreplace").decode("utf-8")

    entities = []
    if rec.patient_id:
        entities.append({"what": {"identifier": {"system": "urn:leukos:patient-pseudonym",
                                                 "value": log.pseudonym(rec.patient_id)}},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                  "code": "1", "display": "Person"}})
    if rec.hook_instance:
        entities.append({"what": {"identifier": {"system": "urn:cds-hooks:hookInstance",
                                                 "value": clean(rec.hook_instance[:200])}}})
    for card in rec.card_uuids:
        entities.append({"what": {"identifier": {"system": "urn:cds-hooks:card", "value": clean(card[:200])}}})
    agent = {"who": {"display": clean(rec.requestor)}, "requestor": True}
    if rec.client_address:
        agent["network"] = {"address": rec.client_address, "type": "2"}
    event = {"resourceType": "AuditEvent", "id": event_id,
             "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                      "display": "RESTful Operation"},
             "action": rec.action, "recorded": recorded,
             "outcome": {2: "0", 3: "0", 4: "4", 5: "8"}.get(rec.status // 100, "8"),
             "agent": [agent], "source": {"observer": {"display": log.observer}},
             "extension": [{"url": "urn:leukos:http", "valueString": clean(f"{rec.method} {rec.path[:500]} {rec.status}")}]}
    if rec.subtype:
        event["subtype"] = [{"system": "urn:leukos:operation", "code": clean(rec.subtype)}]
    if entities:
        event["entity"] = entities
    return event


_ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)  # controls, quotes, lone surrogates
_NO_SURROGATE = st.text(max_size=20)
_RECORDS = st.builds(
    AuditRecord, method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), path=_ANY_TEXT,
    status=st.sampled_from([200, 201, 307, 401, 404, 412, 413, 422, 500, 503, 99]), requestor=_ANY_TEXT,
    client_address=st.none() | _NO_SURROGATE, action=st.sampled_from(["C", "R", "U", "D", "E"]),
    subtype=st.none() | _ANY_TEXT, patient_id=st.none() | _ANY_TEXT, hook_instance=st.none() | _ANY_TEXT,
    card_uuids=st.lists(_ANY_TEXT, max_size=4).map(tuple))


@settings(max_examples=300, deadline=None)
@given(rec=_RECORDS, observer=_NO_SURROGATE)
def test_event_json_is_canonical_and_has_every_field(rec, observer):
    log = AuditLog(None, observer=observer, key=b"k" * 32)
    now = dt.datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=dt.UTC)
    written = log.event_json(rec, now)
    event = json.loads(written)
    assert _canonical(event) == written, "the bytes hashed are the canonical form of the event"
    assert event == _reference_event(log, rec, event["id"], "2026-03-01T08:00:00.123456Z")
    assert str(uuid.UUID(event["id"])) == event["id"]
    assert uuid.UUID(event["id"]).version == 4 and uuid.UUID(event["id"]).variant == uuid.RFC_4122


@settings(max_examples=200, deadline=None)
@given(patient_id=_ANY_TEXT, key=st.binary(min_size=1, max_size=100))
def test_pseudonym_is_the_keyed_hmac_sha256_of_the_id(patient_id, key):
    """The pseudonym is HMAC-SHA256(key, id) (first 32 hex digits) for any key length and any text,
    however it is computed, and the same id keeps the same pseudonym across calls."""
    log = AuditLog(None, key=key)
    want = hmac.new(key, patient_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]
    assert log.pseudonym(patient_id) == want
    assert log.pseudonym(patient_id) == want


def test_event_ids_are_fresh_random_uuids():
    log = AuditLog(None, key=b"k" * 32)
    rec = AuditRecord("GET", "/api/health", 200, "api-token", None)
    ids = [json.loads(log.event_json(rec))["id"] for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        u = uuid.UUID(text)
        assert str(u) == text and u.version == 4 and u.variant == uuid.RFC_4122
    bits = {n: {(uuid.UUID(t).int >> n) & 1 for t in ids} for n in range(128)}
    fixed = {n for n, seen in bits.items() if len(seen) == 1}
    assert fixed == {76, 77, 78, 79, 62, 63}, "only the version and variant bits are fixed"


def test_appended_lines_verify_and_records_read_them_back(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl")
    recs = [AuditRecord("POST", "/cds-services/leukos-patient-view", 200, "anonymous-dev", "127.0.0.1",
                        subtype="patient-view", patient_id="p-1", hook_instance="h\u00e9\"\\\n\ud800",
                        card_uuids=("c1", "c2")),
            AuditRecord("GET", "/api/health", 200, "api-token", None, action="R")]
    for rec in recs * 3:
        assert log.append(rec) is None
    rows = _lines(tmp_path / "a.jsonl")
    assert verify_chain(rows) is None
    assert log.records == rows
    assert [r["seq"] for r in rows] == list(range(1, 7))
    assert rows[0]["event"]["entity"][1]["what"]["identifier"]["value"] == "h\u00e9\"\\\n\\ud800"
