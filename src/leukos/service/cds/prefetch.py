"""Prefetch templates, and turning a CDS request's prefetch (or FHIR server reads) into a Bundle.

Templates follow CDS Hooks 2.0 §"Prefetch Template" (https://cds-hooks.hl7.org/2.0/#prefetch-template):
tokens ``{{context.patientId}}``; type-level searches with token ``system|code`` lists, ``_sort``
and ``_count``. The laboratory search lists every LOINC code the knowledge base maps to an analyte
(``labs.toml``), so the query and the importer come from one definition.

When a required key is missing from the prefetch (omitted = the client could not satisfy it), the
service reads it from ``fhirServer`` with the ``fhirAuthorization`` bearer token; with no server it
answers HTTP 412 (§"Prefetch": "If the CDS Service is unable to obtain the required data ...").
A key sent as ``null`` means "no data" and is not fetched again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from leukos.knowledge import KnowledgeBase
from leukos.service.cds.models import CdsRequest
from leukos.service.settings import is_loopback

__all__ = ["PrefetchMissing", "FhirServerError", "prefetch_templates", "REQUIRED", "gather", "bundle_from_prefetch"]

REQUIRED = ("patient", "labs")
LOINC = "http://loinc.org"
_TOKEN = re.compile(r"\{\{\s*context\.(\w+)\s*\}\}")


class PrefetchMissing(Exception):
    """Required prefetch absent and no FHIR server to read it from (HTTP 412)."""

    def __init__(self, keys: list[str]):
        super().__init__(f"required prefetch missing and no fhirServer given: {', '.join(keys)}")
        self.keys = keys


class FhirServerError(Exception):
    """The FHIR server could not be read (HTTP 502 to the CDS client; never a user error)."""


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
        v = context.get(m.group(1))
        if not isinstance(v, (str, int)) or not str(v):
            raise PrefetchMissing([f"context.{m.group(1)}"])
        return str(v)
    return _TOKEN.sub(sub, template)


def _check_server(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or "")):
        return
    raise FhirServerError("fhirServer must be an https URL (plain http only on loopback)")


async def gather(req: CdsRequest, kb: KnowledgeBase, *, timeout_s: float,
                 keys: tuple[str, ...] = ("patient", "labs", "conditions", "meds")) -> dict[str, Any]:
    """The prefetch values for ``keys``: from the request, else read from ``fhirServer``.

    Raises
    ------
    PrefetchMissing
        A required key is absent and there is no ``fhirServer``.
    FhirServerError
        The server refused or failed; the token is never included in the message.
    """
    have = dict(req.prefetch or {})
    missing = [k for k in keys if k not in have]
    if not missing:
        return have
    if not req.fhirServer:
        required_missing = [k for k in missing if k in REQUIRED]
        if required_missing:
            raise PrefetchMissing(required_missing)
        return have
    _check_server(req.fhirServer)
    templates = prefetch_templates(kb)
    headers = {"Accept": "application/fhir+json"}
    if req.fhirAuthorization is not None:
        headers["Authorization"] = f"Bearer {req.fhirAuthorization.access_token}"
    base = req.fhirServer.rstrip("/")
    async with httpx.AsyncClient(timeout=timeout_s, headers=headers, follow_redirects=False) as client:
        for key in missing:
            url = f"{base}/{_fill(templates[key], req.context)}"
            try:
                resp = await client.get(url)
            except httpx.HTTPError as exc:
                raise FhirServerError(f"fhirServer read of {key} failed: {type(exc).__name__}") from None
            if resp.status_code == 404 and key == "patient":
                have[key] = None
                continue
            if resp.status_code >= 400:
                raise FhirServerError(f"fhirServer read of {key} answered HTTP {resp.status_code}")
            have[key] = resp.json()
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
