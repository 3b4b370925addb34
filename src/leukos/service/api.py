"""REST API: ``/api/assess``, ``/api/plan``, ``/api/simulate``, ``/api/rules``, ``/api/health``.

Request bodies are a case in the leukos case format (JSON or YAML) or a FHIR R4 Bundle; responses
follow docs/outputs.md. The handlers read the body, then parse, call the core through
:class:`~leukos.service.engines.Engines` and render its ``to_dict()`` in the worker pool
(:mod:`leukos.service.workers`): the event loop computes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from leukos import __version__
from leukos.domain.assessment import jsonable
from leukos.errors import CaseFormatError, ErrorDetail, FhirInputError
from leukos.interop.case_format import parse_document
from leukos.service.deps import api_caller, service_state
from leukos.service.engines import load_case
from leukos.service.http_errors import JsonBytes, json_bytes

__all__ = ["router", "case_request_body", "plan_options"]

router = APIRouter(prefix="/api", tags=["api"], responses={
    401: {"description": "Bearer token (API token or client JWT) missing or refused"}})

USER_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error", "title", "details"],
    "properties": {"error": {"type": "string"}, "title": {"type": "string"},
                   "details": {"type": "array", "items": {"type": "object", "properties": {
                       "field": {"type": "string"}, "value": {}, "expected": {"type": "string"},
                       "fix": {"type": "string"}}}}}}
_ERROR = {"description": "Bad input: field, value, expected and fix for each problem",
          "content": {"application/json": {"schema": USER_ERROR_SCHEMA}}}


@lru_cache(maxsize=1)
def _case_schema() -> dict[str, Any]:
    schema = json.loads(resources.files("leukos.interop").joinpath("case.schema.json").read_text("utf-8"))
    schema.pop("$schema", None)
    schema.pop("$id", None)
    return schema


def case_request_body() -> dict[str, Any]:
    """OpenAPI requestBody: a leukos case (JSON/YAML) or a FHIR R4 Bundle."""
    bundle = {"type": "object", "required": ["resourceType"],
              "properties": {"resourceType": {"const": "Bundle"}, "entry": {"type": "array"}}}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"anyOf": [_case_schema(), bundle]}},
        "application/fhir+json": {"schema": bundle}},
        "description": "A leukos case (JSON; YAML text is accepted too) or a FHIR R4 Bundle"},
        "responses": {"422": _ERROR, "413": {"description": "Request body too large"},
                      "503": {"description": "Busy or over the wall time (Retry-After), audit trail unavailable, "
                                             "or a part of the core (e.g. the planner) not in this build"}}}


def _case(body: bytes, fhir: bool, st: Any):
    """Parse and validate a request body into a Case (in a worker thread: this is CPU work)."""
    if not body.strip():
        raise CaseFormatError(ErrorDetail(field="body", value="", expected="a leukos case (JSON/YAML) or a FHIR Bundle",
                                          fix="send the case as the request body"))
    if fhir:
        doc = parse_document(body, name="body")
        if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
            raise FhirInputError(ErrorDetail(
                field="body.resourceType", value=doc.get("resourceType") if isinstance(doc, dict) else type(doc).__name__,
                expected="a FHIR R4 Bundle (resourceType 'Bundle')",
                fix="send a Bundle as application/fhir+json, or a leukos case as application/json"))
    return load_case(body, st.kb, name="body")


async def _compute(request: Request, subtype: str, work: Callable[[Any, Any], Any]) -> JsonBytes:
    """Read the body, then parse + compute + render in the REST API's worker pool (never on the event loop)."""
    request.state.audit_subtype = subtype
    st = service_state(request)
    body = await request.body()
    fhir = request.headers.get("content-type", "").startswith("application/fhir+json")

    def job() -> tuple[str | None, bytes]:
        case = _case(body, fhir, st)
        return case.id, json_bytes(work(case, st))

    case_id, payload = await st.api_pool.run(job)
    request.state.audit_patient = case_id
    return JsonBytes(payload)


def plan_options(blood_volumes: float | None, volume_l: float | None, hours_after: float | None,
                 draws: int | None) -> dict[str, Any]:
    return {k: v for k, v in {"blood_volumes": blood_volumes, "volume_l": volume_l,
                              "hours_after": hours_after, "draws": draws}.items() if v is not None}


@router.post("/assess", summary="Assess a case", openapi_extra=case_request_body(),
             response_description="The assessment (docs/outputs.md, as `leukos assess --format json`)")
async def assess(request: Request, _caller=Depends(api_caller)) -> dict[str, Any]:
    return await _compute(request, "assess", lambda case, st: st.engines.assess(case, st.kb).to_dict())


_BV = Query(None, gt=0, le=5, allow_inf_nan=False, description="blood volumes to process (× TBV)")
_VOL = Query(None, gt=0, le=40, allow_inf_nan=False, description="volume to process, L")
_HOURS = Query(None, ge=0, le=72, allow_inf_nan=False, description="hours to simulate after the procedure")
_DRAWS = Query(None, ge=1, le=500, description="Monte-Carlo draws for percentile bands")


@router.post("/plan", summary="Plan a leukapheresis", openapi_extra=case_request_body(),
             response_description="The procedure plan (docs/outputs.md, as `leukos plan --format json`)")
async def plan(request: Request, blood_volumes: float | None = _BV, volume_l: float | None = _VOL,
               _caller=Depends(api_caller)) -> dict[str, Any]:
    options = plan_options(blood_volumes, volume_l, None, None)

    def work(case, st):
        assessment = st.engines.assess(case, st.kb) if st.engines.assess_fn else None
        return jsonable(st.engines.plan(case, options, st.kb, assessment))

    return await _compute(request, "plan", work)


@router.post("/simulate", summary="Simulate a leukapheresis", openapi_extra=case_request_body(),
             response_description="The predicted time course (docs/outputs.md, as `leukos simulate --format json`)")
async def simulate(request: Request, blood_volumes: float | None = _BV, volume_l: float | None = _VOL,
                   hours_after: float | None = _HOURS, draws: int | None = _DRAWS,
                   _caller=Depends(api_caller)) -> dict[str, Any]:
    options = plan_options(blood_volumes, volume_l, hours_after, draws)
    return await _compute(request, "simulate", lambda case, st: jsonable(st.engines.simulate(case, options, st.kb)))


@router.get("/rules", summary="The ruleset: every parameter with unit, status and citations")
async def rules(request: Request, _caller=Depends(api_caller)) -> dict[str, Any]:
    kb = service_state(request).kb
    return {"leukos_version": __version__, "ruleset_version": kb.ruleset_version,
            "parameters": {k: p.to_dict() for k, p in sorted(kb.parameters.items())},
            "citations": {k: c.to_dict() for k, c in sorted(kb.citations.items())}}


@router.get("/health", summary="Liveness and what this build contains (no authentication)")
async def health(request: Request) -> dict[str, Any]:
    st = service_state(request)
    return {"status": "ok", "leukos_version": __version__, "ruleset_version": st.kb.ruleset_version,
            "engines": st.engines.available, "auth": "disabled (loopback dev)" if st.settings.auth_disabled else "on"}
