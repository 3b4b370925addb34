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
import stat
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leukos.errors import ErrorDetail, LeukosUserError

__all__ = ["AuditLog", "AuditRecord", "AuditUnavailable", "AuditLogCorrupt", "AuditLogUnusable", "PseudonymKeyUnusable",
           "load_pseudonym_key", "verify_chain", "GENESIS", "KEY_FILE"]

GENESIS = "0" * 64
KEY_FILE = "audit-pseudonym.key"

# FHIR R4 AuditEvent.outcome: 0 success, 4 minor failure, 8 serious failure, 12 major failure.
_OUTCOME = {2: "0", 3: "0", 4: "4", 5: "8"}


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# Parts of an event's canonical JSON (AuditLog.event_json): text is escaped by the function json.dumps
# uses when ensure_ascii is off (as in _canonical); the constant objects are encoded by _canonical.
_json_str = json.encoder.encode_basestring
_REST_TYPE = _canonical({"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                         "display": "RESTful Operation"}).decode()


def _random_uuid() -> str:
    """``str(uuid.uuid4())``, formatted from the 16 random bytes directly (RFC 9562 version 4: the
    version nibble 4 and the variant bits 10 set, as ``uuid.uuid4`` sets them) instead of through a
    ``UUID`` object and its integer arithmetic."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40
    b[8] = b[8] & 0x3F | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# A SHA-256 in its initial state: each link of the chain continues a copy (no digest lookup per call).
_SHA256 = hashlib.sha256()


def _identifier_entity(system: str, extra: dict[str, Any] | None = None) -> str:
    """An entity ``{"what": {"identifier": {"system", "value"}}, ...extra}`` with ``%s`` for the JSON value."""
    marker = "\x00value\x00"
    text = _canonical({"what": {"identifier": {"system": system, "value": marker}}, **(extra or {})}).decode()
    return text.replace(_json_str(marker), "%s")


_PATIENT_ENTITY = _identifier_entity("urn:leukos:patient-pseudonym", {"type": {
    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"}})
_HOOK_ENTITY = _identifier_entity("urn:cds-hooks:hookInstance")
_CARD_ENTITY = _identifier_entity("urn:cds-hooks:card")


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


class AuditLogUnusable(LeukosUserError):
    """``LEUKOS_AUDIT_LOG_PATH`` cannot hold the audit trail (a folder, a device, not writable ...)."""

    default_title = "The audit trail cannot be written"

    def __init__(self, path: Path, reason: str):
        super().__init__(ErrorDetail(
            field="LEUKOS_AUDIT_LOG_PATH", value=str(path),
            expected=f"a regular file leukos can append to, or a new file in a folder it can create; {reason}",
            fix="give a writable file path, e.g. /var/lib/leukos/audit.jsonl (every call is recorded there: "
                "a device such as /dev/null would throw the audit trail away)"))


class PseudonymKeyUnusable(LeukosUserError):
    """The audit pseudonym key file in ``LEUKOS_DATA_DIR`` cannot be used. Its content is never shown."""

    default_title = "The audit pseudonym key cannot be used"

    def __init__(self, path: Path, reason: str):
        super().__init__(ErrorDetail(
            field=f"LEUKOS_DATA_DIR ({KEY_FILE})", value=str(path),
            expected=f"a file holding the audit pseudonym key, 64 hex characters (leukos writes it on first "
                     f"start, mode 0600); {reason}",
            fix="restore the file from the backup of LEUKOS_DATA_DIR, or set LEUKOS_AUDIT_KEY to the key kept as a "
                "secret; only if the key is lost, move the file aside so that a new key is made (the patient "
                "pseudonyms of the audit trail then no longer match the earlier ones)"))


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
    path = data_dir / KEY_FILE
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path), str(path)
    except OSError as exc:
        raise PseudonymKeyUnusable(path, f"it cannot be created ({exc.strerror or type(exc).__name__})") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            key = secrets.token_bytes(32)
            fh.write(key.hex() + "\n")
    except OSError as exc:
        path.unlink(missing_ok=True)  # never leave a half-written key for the next start
        raise PseudonymKeyUnusable(path, f"it cannot be written ({exc.strerror or type(exc).__name__})") from None
    return key, str(path)


def _read_key_file(path: Path) -> bytes:
    """The key in an existing key file; :class:`PseudonymKeyUnusable` (without its content) otherwise."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise PseudonymKeyUnusable(path, "this is not a regular file (a folder?)")
        with open(path, "rb") as fh:
            data = fh.read(256)  # a key file is 65 bytes; a larger one is not a key file
    except OSError as exc:
        raise PseudonymKeyUnusable(path, f"it cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except ValueError:  # UnicodeDecodeError included
        key = b""
    if len(key) != 32:
        raise PseudonymKeyUnusable(path, "this file does not hold 64 hex characters")
    return key


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
        # HMAC-SHA256 keyed once; each pseudonym continues a copy (the same digest as hmac.new(key, id,
        # sha256) without looking the digest up and keying again on every call: OpenSSL 3's lookup was
        # a third of an audited call's CPU once the call's own work had evicted it from the caches).
        self._keyed = hmac.new(self._key, digestmod=hashlib.sha256)
        self._lock = threading.Lock()
        self._seq = 0
        self._prev = GENESIS
        self.recovery: str | None = None
        self._recent: deque[bytes] = deque(maxlen=1000)  # the newest lines, for :attr:`records`
        self._fd: int | None = None
        if path is not None:
            self._open(path)

    def _open(self, path: Path) -> None:
        """Open (and first verify) the audit file; :class:`AuditLogUnusable` if it cannot hold the trail.

        Only a regular file is accepted: a device (``/dev/null``), a pipe or a folder would lose the
        trail or block the start."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                mode = os.stat(path).st_mode
            except FileNotFoundError:
                mode = None
            if mode is not None and not stat.S_ISREG(mode):
                kind = "a folder" if stat.S_ISDIR(mode) else "a device, pipe or socket"
                raise AuditLogUnusable(path, f"this is {kind}, not a regular file")
            if mode is not None:
                self._recover(path)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            if not stat.S_ISREG(os.fstat(self._fd).st_mode):  # replaced between the checks
                os.close(self._fd)
                self._fd = None
                raise AuditLogUnusable(path, "this is not a regular file")
        except OSError as exc:
            raise AuditLogUnusable(path, f"it cannot be used ({exc.strerror or type(exc).__name__})") from None

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
        h = self._keyed.copy()
        h.update(patient_id.encode("utf-8", "surrogatepass"))
        return h.hexdigest()[:32]

    def event(self, rec: AuditRecord, now: dt.datetime | None = None) -> dict[str, Any]:
        """The AuditEvent of ``rec``, as a dict (what :meth:`event_json` writes)."""
        return json.loads(self.event_json(rec, now))

    def event_json(self, rec: AuditRecord, now: dt.datetime | None = None) -> bytes:
        """The FHIR R4 AuditEvent of ``rec`` in canonical JSON (what the hash covers), written directly.

        ``resourceType`` AuditEvent, a random ``id``, ``type`` rest, ``action``, ``recorded`` (UTC),
        ``outcome`` from the HTTP status, one ``agent`` (the requestor, its network address), the
        ``source`` observer, an ``extension`` with method, path and status, ``subtype`` (the
        operation) and the ``entity`` list: the patient's pseudonym, the hook instance, the cards.

        Canonical JSON (:func:`_canonical`: sorted keys, no spaces, UTF-8) is written here without
        building the dict and encoding it, which cost more than the rest of an audited call: keys in
        sorted order, text escaped by the function ``json.dumps`` itself uses, the constant parts
        encoded once by :func:`_canonical`. tests/service/test_audit.py checks that the result is the
        canonical form of itself, with the fields above, for every shape and hostile text.
        """
        now = now or dt.datetime.now(dt.UTC)
        out = ['{"action":', _json_str(rec.action), ',"agent":[{']
        if rec.client_address:
            out += ['"network":{"address":', _json_str(rec.client_address), ',"type":"2"},']
        out += ['"requestor":true,"who":{"display":', _json_str(_clean(rec.requestor)), '}}]']
        entities = []
        if rec.patient_id:
            entities.append(_PATIENT_ENTITY % _json_str(self.pseudonym(rec.patient_id)))
        if rec.hook_instance:
            entities.append(_HOOK_ENTITY % _json_str(_clean(rec.hook_instance[:200])))
        for card in rec.card_uuids:
            entities.append(_CARD_ENTITY % _json_str(_clean(card[:200])))
        if entities:
            out += [',"entity":[', ",".join(entities), "]"]
        out += [',"extension":[{"url":"urn:leukos:http","valueString":',
                _json_str(_clean(f"{rec.method} {rec.path[:500]} {rec.status}")),
                '}],"id":"', _random_uuid(), '","outcome":"', _OUTCOME.get(rec.status // 100, "8"),
                '","recorded":', _json_str(now.isoformat().replace("+00:00", "Z")),
                ',"resourceType":"AuditEvent","source":{"observer":{"display":', _json_str(self.observer), "}}"]
        if rec.subtype:
            out += [',"subtype":[{"code":', _json_str(_clean(rec.subtype)), ',"system":"urn:leukos:operation"}]']
        out += [',"type":', _REST_TYPE, "}"]
        return "".join(out).encode()

    def append(self, rec: AuditRecord) -> None:
        """Chain and write one event; :class:`AuditUnavailable` if it cannot be written."""
        canonical = self.event_json(rec)  # hashed, and written as the line's event
        with self._lock:
            seq = self._seq + 1
            h = _SHA256.copy()
            h.update(self._prev.encode())
            h.update(canonical)
            digest = h.hexdigest()
            # the JSON of {"seq", "prev", "hash", "event"}, with the event in its canonical form
            line = b'{"seq": %d, "prev": "%s", "hash": "%s", "event": %s}\n' % (
                seq, self._prev.encode(), digest.encode(), canonical)
            if self.path is not None:
                try:
                    if self._fd is None:
                        raise OSError("audit file is closed")
                    written = os.write(self._fd, line)
                    if written != len(line):
                        raise OSError(f"short write ({written} of {len(line)} bytes)")
                except OSError as exc:
                    raise AuditUnavailable(f"the audit trail could not be written ({type(exc).__name__})") from None
            self._seq, self._prev = seq, digest
            self._recent.append(line)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The newest lines (at most 1000), as ``{"seq", "prev", "hash", "event"}`` dicts (read back on access)."""
        with self._lock:
            lines = list(self._recent)
        return [json.loads(line) for line in lines]

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
