"""Prefetch templates, and turning a CDS request's prefetch (or FHIR server reads) into a Bundle.

Templates follow CDS Hooks 2.0 §"Prefetch Template" (https://cds-hooks.hl7.org/2.0/#prefetch-template):
tokens ``{{context.patientId}}``; type-level searches with token ``system|code`` lists, ``_sort``
and ``_count``. The laboratory search lists every LOINC code the knowledge base maps to an analyte
(``labs.toml``), so the query and the importer come from one definition.

When a key is missing from the prefetch (omitted = the client could not satisfy it), the service
reads it from ``fhirServer`` with the ``fhirAuthorization`` bearer token — only if that server is on
``LEUKOS_FHIR_SERVER_ALLOWLIST`` (SSRF guard; the token is never sent anywhere else, redirects are
not followed) and with ``context.patientId`` validated as a FHIR id and URL-encoded.
A key sent as ``null`` means "no data" and is not fetched again.

Degrading: only the laboratory results are essential (:data:`ESSENTIAL`). When they cannot be
obtained the call is answered HTTP 412 (§"Prefetch": "If the CDS Service is unable to obtain the
required data ..."). Any other key that cannot be read (no server, server not allowed, error,
timeout) is left out and named in a note that the cards carry, so the clinician sees what was
not assessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from leukos.errors import LeukosUserError
from leukos.interop.limits import loads_json
from leukos.knowledge import KnowledgeBase
from leukos.service.cds.models import CdsRequest
from leukos.service.cds.patient_check import FHIR_ID, check_patient_id
from leukos.service.settings import is_loopback

__all__ = ["PrefetchMissing", "FhirServerError", "prefetch_templates", "REQUIRED", "ESSENTIAL", "gather",
           "prefetch_at_hand", "bundle_from_prefetch", "allowed_server"]

ESSENTIAL = ("labs",)
REQUIRED = ESSENTIAL  # kept name: the keys without which nothing can be said
LOINC = "http://loinc.org"
_TOKEN = re.compile(r"\{\{\s*context\.(\w+)\s*\}\}")
MAX_FHIR_RESPONSE_BYTES = 5 * 1024 * 1024
_WHAT = {"patient": "the Patient (sex, age)", "labs": "the laboratory results",
         "conditions": "the conditions (diagnoses, symptoms, pregnancy)",
         "meds": "the active medications (cytoreduction, drugs)"}


class PrefetchMissing(Exception):
    """Essential prefetch that could not be obtained (HTTP 412)."""

    def __init__(self, keys: list[str], reason: str = "required prefetch missing and no fhirServer given"):
        super().__init__(f"{reason}: {', '.join(keys)}")
        self.keys = keys
        self.fix = ("send the prefetch, or a fhirServer on the service's allow-list (+ fhirAuthorization) "
                    "so leukos can read it")


class FhirServerError(Exception):
    """The FHIR server could not be read (the token is never part of the message)."""


def prefetch_templates(kb: KnowledgeBase) -> dict[str, str]:
    codes = sorted({c for a in kb.analytes.values() for c in a.loinc})
    code_list = ",".join(f"{LOINC}|{c}" for c in codes)
    return {
        "patient": "Patient/{{context.patientId}}",
        "labs": f"Observation?patient={{{{context.patientId}}}}&code={code_list}&_sort=-date&_count=200",
        "conditions": "Condition?patient={{context.patientId}}",
        "meds": "MedicationRequest?patient={{context.patientId}}&status=active",
    }


def _fill(template: str, context: Mapping[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        v = context.get(name)
        if name == "patientId":
            return quote(check_patient_id(v), safe="")
        if not isinstance(v, str) or not FHIR_ID.fullmatch(v):
            raise PrefetchMissing([f"context.{name}"], reason="context value not usable in a FHIR query")
        return quote(v, safe="")
    return _TOKEN.sub(sub, template)


def _norm_base(url: str) -> str:
    return url.strip().rstrip("/")


def allowed_server(url: str, allowlist: tuple[str, ...]) -> str | None:
    """Why ``url`` may not be read (None = allowed): on the allow-list, https (http only on loopback)."""
    parts = urlsplit(url)
    if parts.username or parts.password or parts.query or parts.fragment:
        return "fhirServer must be a plain base URL (no user info, query or fragment)"
    if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or ""))):
        return "fhirServer must be an https URL (plain http only on loopback)"
    if _norm_base(url) not in {_norm_base(a) for a in allowlist}:
        return "fhirServer is not on this service's allow-list (LEUKOS_FHIR_SERVER_ALLOWLIST)"
    return None


def prefetch_at_hand(req: CdsRequest, *, allowlist: tuple[str, ...] = (),
                     keys: tuple[str, ...] = ("patient", "labs", "conditions", "meds"),
                     notes: list[str] | None = None) -> dict[str, Any] | None:
    """What :func:`gather` answers when it needs no ``fhirServer`` read (no I/O, so it can run in the
    worker pool with the rest of the call); ``None`` when a key must be read from an allowed server.

    Raises :class:`PrefetchMissing` as :func:`gather` does.
    """
    notes = notes if notes is not None else []
    have = dict(req.prefetch or {})
    missing = [k for k in keys if k not in have]
    if not missing:
        return have
    refused = "no fhirServer was given" if not req.fhirServer else allowed_server(req.fhirServer, allowlist)
    if refused is not None:
        return _without(have, missing, refused, notes)
    return None


async def gather(req: CdsRequest, kb: KnowledgeBase, *, timeout_s: float, allowlist: tuple[str, ...] = (),
                 keys: tuple[str, ...] = ("patient", "labs", "conditions", "meds"),
                 notes: list[str] | None = None) -> dict[str, Any]:
    """The prefetch values for ``keys``: from the request, else read from an allowed ``fhirServer``.

    Keys that cannot be obtained are left out and described in ``notes`` (when given).

    Raises
    ------
    PrefetchMissing
        An :data:`ESSENTIAL` key could not be obtained (the reason says why).
    """
    notes = notes if notes is not None else []
    at_hand = prefetch_at_hand(req, allowlist=allowlist, keys=keys, notes=notes)
    if at_hand is not None:
        return at_hand
    have = dict(req.prefetch or {})
    missing = [k for k in keys if k not in have]
    templates = prefetch_templates(kb)
    paths = {key: _fill(templates[key], req.context) for key in missing}
    headers = {"Accept": "application/fhir+json"}
    if req.fhirAuthorization is not None:
        headers["Authorization"] = f"Bearer {req.fhirAuthorization.access_token}"
    base = _norm_base(req.fhirServer or "")
    failed: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=timeout_s, headers=headers, follow_redirects=False) as client:
        for key in missing:
            try:
                resp = await client.get(f"{base}/{paths[key]}")
            except httpx.HTTPError as exc:
                failed[key] = f"the fhirServer read failed ({type(exc).__name__})"
                continue
            if resp.status_code == 404 and key == "patient":
                have[key] = None
                continue
            if resp.status_code >= 400 or 300 <= resp.status_code < 400:
                failed[key] = f"the fhirServer answered HTTP {resp.status_code}"
                continue
            if len(resp.content) > MAX_FHIR_RESPONSE_BYTES:
                failed[key] = "the fhirServer answer was too large"
                continue
            try:
                have[key] = loads_json(resp.content.decode("utf-8"), name=f"fhirServer {key}")
            except (LeukosUserError, UnicodeDecodeError):
                failed[key] = "the fhirServer answer was not usable JSON"
    for reason in sorted(set(failed.values())):
        _without(have, [k for k, r in failed.items() if r == reason], reason, notes)
    return have


def _without(have: dict[str, Any], keys: list[str], reason: str, notes: list[str]) -> dict[str, Any]:
    essential = [k for k in keys if k in ESSENTIAL]
    if essential:
        raise PrefetchMissing(essential, reason=f"required prefetch could not be obtained ({reason})")
    for k in keys:
        notes.append(f"Not read: {_WHAT.get(k, k)}, because {reason}; what depends on it was not assessed "
                     "(missing, not assumed normal).")
    return have


def _resources(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, dict):
        return []
    if value.get("resourceType") == "Bundle":
        return [e["resource"] for e in value.get("entry") or [] if isinstance(e, dict)
                and isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") != "OperationOutcome"]
    if value.get("resourceType") in (None, "OperationOutcome"):
        return []
    return [value]


def bundle_from_prefetch(prefetch: Mapping[str, Any], extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A FHIR R4 ``collection`` Bundle of every resource in the prefetch (deduplicated by type/id)."""
    seen: set[tuple[str, str]] = set()
    entries = []
    for value in list(prefetch.values()) + (extra or []):
        for res in _resources(value):
            ident = (res.get("resourceType", ""), str(res.get("id", id(res))))
            if ident in seen:
                continue
            seen.add(ident)
            entries.append({"resource": res})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
