"""Append-only audit trail: one FHIR R4 AuditEvent per call, hash-chained, as JSON lines.

Each line is ``{"seq", "prev", "hash", "event"}`` where ``hash = sha256(prev + canonical(event))``,
so deleting or editing a line breaks the chain (:func:`verify_chain`). Events carry no tokens and
no free text about the patient: the patient reference is a keyed hash (HMAC-SHA256), the
requestor is the JWT ``iss`` (or "api-token" / "anonymous-dev").

References: FHIR R4 AuditEvent (hl7.org/fhir/R4/auditevent.html); IHE Basic Audit Log Patterns
(BALP).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leukos.errors import ErrorDetail, LeukosUserError

__all__ = ["AuditLog", "AuditRecord", "AuditUnavailable", "AuditLogCorrupt", "load_pseudonym_key", "verify_chain",
           "GENESIS", "KEY_FILE"]

GENESIS = "0" * 64
KEY_FILE = "audit-pseudonym.key"

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


class AuditUnavailable(Exception):
    """The audit trail cannot be written: the call is refused (HTTP 503), never served unrecorded."""


class AuditLogCorrupt(LeukosUserError):
    """The audit file's chain is broken before its last line: the service refuses to start."""

    default_title = "The audit trail cannot be continued"

    def __init__(self, reason: str):
        super().__init__(ErrorDetail(field="LEUKOS_AUDIT_LOG_PATH", value=reason,
                                     expected="an intact audit file (hash chain) or a new path",
                                     fix="keep the file for investigation and set a new LEUKOS_AUDIT_LOG_PATH"))


def _clean(text: str | None) -> str | None:
    """Text that can always be written as UTF-8 (a lone surrogate becomes its escape)."""
    if text is None or text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def load_pseudonym_key(hex_key: str | None, data_dir: Path | None) -> tuple[bytes, str]:
    """The audit pseudonym key and where it came from.

    ``hex_key`` (``LEUKOS_AUDIT_KEY``) wins; else ``<data_dir>/audit-pseudonym.key`` (created with
    32 random bytes and mode 0600 on first start); else a random key for this process only
    (development: pseudonyms then cannot be linked across restarts, and the start-up log says so).
    """
    if hex_key:
        return bytes.fromhex(hex_key), "LEUKOS_AUDIT_KEY"
    if data_dir is None:
        return secrets.token_bytes(32), "random for this process (no LEUKOS_DATA_DIR)"
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text(encoding="ascii").strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise AuditLogCorrupt(f"{path} does not hold a 64-hex-character key") from None
        return key, str(path)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        key = secrets.token_bytes(32)
        fh.write(key.hex() + "\n")
    return key, str(path)


class AuditLog:
    """Thread-safe append-only hash chain, optionally persisted to a JSONL file.

    On opening an existing file the whole chain is verified. A last line that is not complete JSON
    (a crash mid-write) is moved to ``<file>.quarantine-<UTC time>`` and the chain continues from the
    line before; :attr:`recovery` says what was done (logged at start). A break anywhere else means
    the file was edited: :class:`AuditLogCorrupt`, and the service does not start on it.
    Every append is written before the response is sent; a failed write raises
    :class:`AuditUnavailable`.
    """

    def __init__(self, path: Path | None, *, observer: str = "leukos", key: bytes | None = None):
        self.path = path
        self.observer = observer
        self._key = key or secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._seq = 0
        self._prev = GENESIS
        self.recovery: str | None = None
        self.records: list[dict[str, Any]] = []  # in-memory copy of the newest lines (bounded)
        self._fd: int | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                self._recover(path)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _recover(self, path: Path) -> None:
        data = path.read_bytes()
        rows: list[dict[str, Any]] = []
        offset = 0
        tail: int | None = None
        lines = data.split(b"\n")
        last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
        for n, line in enumerate(lines):
            is_last = n == last
            if not line.strip():
                offset += len(line) + 1
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or "event" not in row:
                    raise ValueError("not an audit row")
            except ValueError:
                if not is_last:
                    raise AuditLogCorrupt(f"line {n + 1} is not an audit record and is not the last line: "
                                          "the file was edited") from None
                tail = offset
                break
            rows.append(row)
            offset += len(line) + 1
        broken = verify_chain(rows)
        if broken is not None:
            raise AuditLogCorrupt(f"the hash chain breaks at line {broken + 1}: the file was edited or "
                                  "lines were removed")
        if tail is not None:  # the chain before it verifies: move the incomplete line aside, continue
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            quarantine = path.with_name(f"{path.name}.quarantine-{stamp}")
            quarantine.write_bytes(data[tail:])
            os.truncate(path, tail)
            self.recovery = (f"audit log {path.name}: the last line was incomplete ({len(data) - tail} bytes, "
                             f"moved to {quarantine.name}); the chain of the {len(rows)} complete lines before "
                             "it verifies and continues")
        if rows:
            self._seq, self._prev = rows[-1]["seq"], rows[-1]["hash"]

    def pseudonym(self, patient_id: str) -> str:
        """A keyed hash of a patient id: stable for one key, not reversible without it."""
        return hmac.new(self._key, patient_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]

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
                                                     "value": _clean(rec.hook_instance[:200])}}})
        for card in rec.card_uuids:
            entities.append({"what": {"identifier": {"system": "urn:cds-hooks:card", "value": _clean(card[:200])}}})
        event: dict[str, Any] = {
            "resourceType": "AuditEvent",
            "id": str(uuid.uuid4()),
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                     "display": "RESTful Operation"},
            "action": rec.action,
            "recorded": now.isoformat().replace("+00:00", "Z"),
            "outcome": outcome,
            "agent": [{"who": {"display": _clean(rec.requestor)}, "requestor": True,
                       **({"network": {"address": rec.client_address, "type": "2"}} if rec.client_address else {})}],
            "source": {"observer": {"display": self.observer}},
            "extension": [{"url": "urn:leukos:http",
                           "valueString": _clean(f"{rec.method} {rec.path[:500]} {rec.status}")}],
        }
        if rec.subtype:
            event["subtype"] = [{"system": "urn:leukos:operation", "code": _clean(rec.subtype)}]
        if entities:
            event["entity"] = entities
        return event

    def append(self, rec: AuditRecord) -> dict[str, Any]:
        """Chain and write one event; :class:`AuditUnavailable` if it cannot be written."""
        event = self.event(rec)
        canonical = _canonical(event)  # encoded once: hashed, and written as the line's event
        with self._lock:
            seq = self._seq + 1
            digest = hashlib.sha256(self._prev.encode() + canonical).hexdigest()
            row = {"seq": seq, "prev": self._prev, "hash": digest, "event": event}
            if self.path is not None:
                # the JSON of ``row``, with the event in its canonical form (what the hash covers)
                line = b'{"seq": %d, "prev": "%s", "hash": "%s", "event": %s}\n' % (
                    seq, self._prev.encode(), digest.encode(), canonical)
                try:
                    if self._fd is None:
                        raise OSError("audit file is closed")
                    written = os.write(self._fd, line)
                    if written != len(line):
                        raise OSError(f"short write ({written} of {len(line)} bytes)")
                except OSError as exc:
                    raise AuditUnavailable(f"the audit trail could not be written ({type(exc).__name__})") from None
            self._seq, self._prev = seq, digest
            self.records.append(row)
            del self.records[:-1000]
        return row

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def verify_chain(lines: list[dict[str, Any]]) -> int | None:
    """Index of the first broken line, or None if the chain is intact from the genesis."""
    prev = GENESIS
    for i, row in enumerate(lines):
        want = hashlib.sha256(prev.encode() + _canonical(row["event"])).hexdigest()
        if row.get("prev") != prev or row.get("hash") != want or row.get("seq") != i + 1:
            return i
        prev = row["hash"]
    return None
