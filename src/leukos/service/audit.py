"""Append-only audit trail: one FHIR R4 AuditEvent per call, hash-chained, as JSON lines.

Each line is ``{"seq", "prev", "hash", "event"}`` where ``hash = sha256(prev + canonical(event))``,
so deleting or editing a line breaks the chain (:func:`verify_chain`). Events carry no tokens and
no free text about the patient: the patient reference is a keyed hash (HMAC-SHA256), the
requestor is the JWT ``iss`` (or "api-token" / "anonymous-dev").

References: FHIR R4 AuditEvent (hl7.org/fhir/R4/auditevent.html); IHE Basic Audit Log Patterns
(BALP); interop-and-stack.md §8.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AuditLog", "AuditRecord", "verify_chain", "GENESIS"]

GENESIS = "0" * 64

# FHIR R4 AuditEvent.outcome: 0 success, 4 minor failure, 8 serious failure, 12 major failure.
_OUTCOME = {2: "0", 3: "0", 4: "4", 5: "8"}


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class AuditRecord:
    """What one call did, before it becomes an AuditEvent."""

    method: str
    path: str
    status: int
    requestor: str
    client_address: str | None
    action: str = "E"  # C R U D E
    subtype: str | None = None  # e.g. "patient-view", "assess"
    patient_id: str | None = None  # hashed before it is written
    hook_instance: str | None = None
    card_uuids: tuple[str, ...] = ()


class AuditLog:
    """Thread-safe append-only hash chain, optionally persisted to a JSONL file."""

    def __init__(self, path: Path | None, *, observer: str = "leukos", key: bytes | None = None):
        self.path = path
        self.observer = observer
        self._key = key or secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._seq = 0
        self._prev = GENESIS
        self.records: list[dict[str, Any]] = []  # in-memory copy of the newest lines (bounded)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                last = None
                with path.open("rb") as fh:
                    for line in fh:
                        if line.strip():
                            last = line
                if last:
                    row = json.loads(last)
                    self._seq, self._prev = row["seq"], row["hash"]

    def pseudonym(self, patient_id: str) -> str:
        """A keyed hash of a patient id: stable within this log, not reversible without the key."""
        return hmac.new(self._key, patient_id.encode(), hashlib.sha256).hexdigest()[:32]

    def event(self, rec: AuditRecord, now: dt.datetime | None = None) -> dict[str, Any]:
        now = now or dt.datetime.now(dt.UTC)
        outcome = _OUTCOME.get(rec.status // 100, "8")
        entities: list[dict[str, Any]] = []
        if rec.patient_id:
            entities.append({"what": {"identifier": {"system": "urn:leukos:patient-pseudonym",
                                                     "value": self.pseudonym(rec.patient_id)}},
                             "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                      "code": "1", "display": "Person"}})
        if rec.hook_instance:
            entities.append({"what": {"identifier": {"system": "urn:cds-hooks:hookInstance",
                                                     "value": rec.hook_instance}}})
        for card in rec.card_uuids:
            entities.append({"what": {"identifier": {"system": "urn:cds-hooks:card", "value": card}}})
        event: dict[str, Any] = {
            "resourceType": "AuditEvent",
            "id": str(uuid.uuid4()),
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                     "display": "RESTful Operation"},
            "action": rec.action,
            "recorded": now.isoformat().replace("+00:00", "Z"),
            "outcome": outcome,
            "agent": [{"who": {"display": rec.requestor}, "requestor": True,
                       **({"network": {"address": rec.client_address, "type": "2"}} if rec.client_address else {})}],
            "source": {"observer": {"display": self.observer}},
            "extension": [{"url": "urn:leukos:http", "valueString": f"{rec.method} {rec.path} {rec.status}"}],
        }
        if rec.subtype:
            event["subtype"] = [{"system": "urn:leukos:operation", "code": rec.subtype}]
        if entities:
            event["entity"] = entities
        return event

    def append(self, rec: AuditRecord) -> dict[str, Any]:
        event = self.event(rec)
        with self._lock:
            seq = self._seq + 1
            digest = hashlib.sha256(self._prev.encode() + _canonical(event)).hexdigest()
            row = {"seq": seq, "prev": self._prev, "hash": digest, "event": event}
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            self._seq, self._prev = seq, digest
            self.records.append(row)
            del self.records[:-1000]
        return row


def verify_chain(lines: list[dict[str, Any]]) -> int | None:
    """Index of the first broken line, or None if the chain is intact from the genesis."""
    prev = GENESIS
    for i, row in enumerate(lines):
        want = hashlib.sha256(prev.encode() + _canonical(row["event"])).hexdigest()
        if row.get("prev") != prev or row.get("hash") != want or row.get("seq") != i + 1:
            return i
        prev = row["hash"]
    return None
