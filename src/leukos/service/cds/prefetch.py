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

import asyncio
import re
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from leukos.errors import ErrorDetail, FhirInputError, LeukosUserError
from leukos.interop.limits import loads_json
from leukos.knowledge import KnowledgeBase
from leukos.service.cds.models import CdsRequest
from leukos.service.cds.patient_check import FHIR_ID, check_patient_id
from leukos.service.settings import is_loopback

__all__ = ["PrefetchMissing", "FhirServerError", "prefetch_templates", "REQUIRED", "ESSENTIAL", "gather",
           "prefetch_at_hand", "bundle_from_prefetch", "bundle_problem", "allowed_server"]

ESSENTIAL = ("labs",)
REQUIRED = ESSENTIAL  # kept name: the keys without which nothing can be said
LOINC = "http://loinc.org"
_TOKEN = re.compile(r"\{\{\s*context\.(\w+)\s*\}\}")
MAX_FHIR_RESPONSE_BYTES = 5 * 1024 * 1024
_BEARER = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 §2.1 b64token: what an Authorization header can carry
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
                 notes: list[str] | None = None,
                 run: Callable[..., Awaitable[Any]] | None = None) -> dict[str, Any]:
    """The prefetch values for ``keys``: from the request, else read from an allowed ``fhirServer``
    (``run``: how to run the parsing of the answers off the event loop, e.g. the worker pool's).

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
    headers = {"Accept": "application/fhir+json", "Accept-Encoding": "gzip, deflate"}
    failed: dict[str, str] = {}
    if req.fhirAuthorization is not None:
        token = req.fhirAuthorization.access_token
        if not isinstance(token, str) or not _BEARER.fullmatch(token):  # e.g. a non-ASCII character: no header
            for key in missing:
                failed[key] = "the fhirAuthorization access_token is not a bearer token (RFC 6750 characters only)"
            return _failed(have, failed, notes)
        headers["Authorization"] = f"Bearer {token}"
    base = _norm_base(req.fhirServer or "")
    bodies: dict[str, bytes] = {}

    async def read(client: httpx.AsyncClient, key: str) -> None:
        try:
            async with client.stream("GET", f"{base}/{paths[key]}") as resp:
                if resp.status_code == 404 and key == "patient":
                    have[key] = None
                    return
                if resp.status_code >= 300:  # redirects are not followed; errors are the server's
                    failed[key] = f"the fhirServer answered HTTP {resp.status_code}"
                    return
                body = await _bounded_body(resp)
        except httpx.HTTPError as exc:
            failed[key] = f"the fhirServer read failed ({type(exc).__name__})"
            return
        except _TooLarge as exc:
            failed[key] = str(exc)
            return
        bodies[key] = body

    # One deadline for every read together (they run at once): a server that drips its answer or
    # never answers costs the call timeout_s, not timeout_s per read or per byte.
    async with httpx.AsyncClient(timeout=timeout_s, headers=headers, follow_redirects=False) as client:
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(read(client, key) for key in missing))
        except TimeoutError:
            for key in missing:
                if key not in have and key not in failed and key not in bodies:
                    failed[key] = f"the fhirServer did not answer within {timeout_s:g} s"
    if bodies:  # parsed off the event loop when the caller gives a pool (a 5 MB answer takes ~0.5 s)
        parsed = await run(_parse_answers, bodies) if run is not None else _parse_answers(bodies)
        for key, (value, problem) in parsed.items():
            if problem is not None:
                failed[key] = problem
            else:
                have[key] = value
    return _failed(have, failed, notes)


class _TooLarge(Exception):
    pass


async def _bounded_body(resp: httpx.Response) -> bytes:
    """The answer's body, read as it arrives and refused past :data:`MAX_FHIR_RESPONSE_BYTES`, sent or
    unpacked: a gzip bomb (1 GB of zeros in 1 MB) is stopped at the limit, never unpacked whole."""
    encoding = resp.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip", "deflate"):
        raise _TooLarge(f"the fhirServer answer was in an encoding leukos does not read ({encoding[:20]})")
    raw = bytearray()
    async for chunk in resp.aiter_raw():
        raw += chunk
        if len(raw) > MAX_FHIR_RESPONSE_BYTES:
            raise _TooLarge("the fhirServer answer was too large")
    if encoding in ("identity", ""):
        return bytes(raw)
    unpack = zlib.decompressobj(wbits=47 if encoding != "deflate" else 15)  # 47: gzip or zlib header
    try:
        out = unpack.decompress(bytes(raw), MAX_FHIR_RESPONSE_BYTES + 1)
    except zlib.error:
        raise _TooLarge("the fhirServer answer could not be unpacked") from None
    if len(out) > MAX_FHIR_RESPONSE_BYTES or unpack.unconsumed_tail:
        raise _TooLarge("the fhirServer answer was too large (unpacked)")
    return out


def _parse_answers(bodies: dict[str, bytes]) -> dict[str, tuple[Any, str | None]]:
    """Each answer as JSON, and why it cannot be used (None: it can): the same shapes a prefetch
    value must have (a resource, or a Bundle of resources), and the Patient a Patient."""
    out: dict[str, tuple[Any, str | None]] = {}
    for key, body in bodies.items():
        try:
            value = loads_json(body.decode("utf-8"), name=f"fhirServer {key}")
        except (LeukosUserError, UnicodeDecodeError):
            out[key] = (None, "the fhirServer answer was not usable JSON")
            continue
        problem = bundle_problem(value)
        if problem is None and isinstance(value, dict) and value.get("resourceType") == "OperationOutcome":
            problem = "an OperationOutcome (an error report), not the data asked for"
        elif problem is None and key == "patient" and value.get("resourceType") != "Patient":
            problem = "not a Patient resource"
        out[key] = (value, None if problem is None else f"the fhirServer answer was {problem}")
    return out


def _failed(have: dict[str, Any], failed: dict[str, str], notes: list[str]) -> dict[str, Any]:
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


def bundle_problem(value: Any) -> str | None:
    """Why a prefetch value (or a fhirServer answer) is not a resource or a Bundle of resources
    (``None``: it is). An entry without a resource is allowed (FHIR R4 Bundle.entry.resource 0..1)."""
    if not isinstance(value, dict):
        return "not a FHIR resource or Bundle (a JSON object)"
    if value.get("resourceType") != "Bundle":
        return None
    entries = value.get("entry")
    if entries is None:
        return None
    if type(entries) is not list:
        return "a Bundle whose entry is not a list"
    for e in entries:
        if type(e) is not dict or type(e.get("resource", e)) is not dict:
            return "a Bundle with an entry that is not a resource"
    return None


def _resources(key: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, dict):
        return []
    if value.get("resourceType") == "Bundle":
        problem = bundle_problem(value)
        if problem is not None:  # never skipped silently: a result left out is data lost
            raise FhirInputError(ErrorDetail(f"prefetch.{key}.entry", "(not shown)", "a list of entries, each with a "
                                             "resource (a JSON object)", f"send {key} as a FHIR Bundle of resources"))
        return [e["resource"] for e in value.get("entry") or () if "resource" in e
                and e["resource"].get("resourceType") != "OperationOutcome"]
    if value.get("resourceType") in (None, "OperationOutcome"):
        return []
    return [value]


def bundle_from_prefetch(prefetch: Mapping[str, Any], extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A FHIR R4 ``collection`` Bundle of every resource in the prefetch (deduplicated by type/id)."""
    seen: set[tuple[str, str]] = set()
    entries = []
    for key, value in [*prefetch.items(), *(("extra", x) for x in extra or ())]:
        for res in _resources(key, value):
            ident = (res.get("resourceType", ""), str(res.get("id", id(res))))
            if ident in seen:
                continue
            seen.add(ident)
            entries.append({"resource": res})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
