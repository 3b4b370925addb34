"""CDS Hooks 2.0 endpoints: discovery, ``patient-view``, ``order-select`` and feedback.

- ``GET /cds-services`` — §"Discovery"
- ``POST /cds-services/{id}`` — §"Calling a CDS Service"; 412 when required prefetch is missing
  and no ``fhirServer`` is given (§"Prefetch")
- ``POST /cds-services/{id}/feedback`` — §"Feedback"; idempotent: the same card outcome
  reported twice is stored once

Hooks are registered with :func:`hook`; each handler gets the parsed request and returns cards.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from leukos.domain.case import Case
from leukos.errors import ErrorDetail, FhirInputError
from leukos.service.cds.cards import cards_for
from leukos.service.cds.models import CdsRequest, CdsResponse, Discovery, Feedback, Service
from leukos.service.cds.orders import order_cards, selected_orders
from leukos.service.cds.prefetch import bundle_from_prefetch, gather, prefetch_templates
from leukos.service.deps import cds_caller, service_state
from leukos.service.engines import EngineUnavailable
from leukos.service.views import finding_views

__all__ = ["router", "hook", "SERVICES", "FeedbackStore"]

_ERR = {"description": "error: field, value, expected, fix"}
_RESPONSES = {400: {"description": "Body is not JSON"}, 401: {"description": "CDS client JWT missing or refused"}, 404: {"description": "No such CDS service"},
              413: {"description": "Request body too large"}, 422: {"description": "Malformed request"},
              502: {"description": "fhirServer could not be read"},
              503: {"description": "A part of the core is not in this build"}}
router = APIRouter(tags=["cds-hooks"], responses={401: _RESPONSES[401]})


@dataclass(frozen=True)
class _Registered:
    hook: str
    id: str
    title: str
    description: str
    handler: Callable[[Request, CdsRequest], Awaitable[list]]


SERVICES: dict[str, _Registered] = {}


def hook(hook_name: str, service_id: str, *, title: str, description: str):
    """Register a CDS service handler for ``hook_name`` at ``/cds-services/{service_id}``."""
    def deco(fn):
        SERVICES[service_id] = _Registered(hook_name, service_id, title, description, fn)
        return fn
    return deco


class FeedbackStore:
    """Card outcomes keyed by (service, card, outcome, timestamp): a repeat is a no-op."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add(self, service_id: str, item: dict[str, Any]) -> bool:
        key = (service_id, item["card"], item["outcome"], item["outcomeTimestamp"])
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = item
            del_keys = list(self._seen)[:-10_000]
            for k in del_keys:
                del self._seen[k]
            return True

    def __len__(self) -> int:
        return len(self._seen)


def _base_url(request: Request) -> str:
    st = service_state(request)
    return (st.settings.public_base_url or str(request.base_url)).rstrip("/")


@router.get("/cds-services", response_model=Discovery, response_model_exclude_none=True,
            summary="CDS Hooks discovery")
async def discovery(request: Request, _caller=Depends(cds_caller)) -> Discovery:
    templates = prefetch_templates(service_state(request).kb)
    return Discovery(services=[Service(hook=s.hook, id=s.id, title=s.title, description=s.description,
                                       prefetch=templates) for s in SERVICES.values()])


def _require_ids(req: CdsRequest) -> str:
    pid = req.context.get("patientId")
    if not isinstance(pid, str) or not pid:
        raise FhirInputError(ErrorDetail(field="context.patientId", value=pid, expected="the FHIR id of the patient",
                                         fix="send context.patientId as the hook definition requires"))
    return pid


async def _case_and_assessment(request: Request, req: CdsRequest) -> tuple[Case, Any, str]:
    st = service_state(request)
    patient_id = _require_ids(req)
    request.state.audit_patient = patient_id
    request.state.audit_hook_instance = req.hookInstance
    prefetch = await gather(req, st.kb, timeout_s=st.settings.fhir_timeout_s)
    try:
        from leukos.interop.fhir import case_from_fhir
    except ImportError:
        raise EngineUnavailable("the FHIR importer (leukos.interop.fhir.case_from_fhir)", "leukos.interop.fhir") from None
    case = case_from_fhir(bundle_from_prefetch(prefetch), st.kb)
    assessment = st.engines.assess(case, st.kb)
    page_url = None
    if st.pages is not None:
        token = st.pages.put(case, assessment)
        page_url = f"{_base_url(request)}/ui/cds/{token}"
    return case, assessment, page_url


@hook("patient-view", "leukos-patient-view", title="leukos: extreme leukocytosis review",
      description="Hyperleukocytosis and leukostasis, tumour lysis, DIC, lab artefacts and APL warnings "
                  "from the patient's recent blood count and chemistry, with the working and references.")
async def _patient_view(request: Request, req: CdsRequest) -> list:
    case, a, page_url = await _case_and_assessment(request, req)
    cards = cards_for(finding_views(a, service_state(request).kb), a, hook_instance=req.hookInstance,
                      base_url=_base_url(request), page_url=page_url)
    from leukos.service.registry_api import registry_cards  # the patient's recorded course, if registered

    return cards + await run_in_threadpool(registry_cards, request, req.context.get("patientId"),
                                           hook_instance=req.hookInstance, base_url=_base_url(request))


@hook("order-select", "leukos-order-select", title="leukos: orders in extreme leukocytosis",
      description="Cautions for red-cell transfusion before cytoreduction and G-CSF while the count is extreme; "
                  "a planning card for a leukapheresis request (never when APL is known or suspected).")
async def _order_select(request: Request, req: CdsRequest) -> list:
    orders = selected_orders(req.context)
    st = service_state(request)
    if not orders:
        return []
    case, a, page_url = await _case_and_assessment(request, req)
    plan = None
    if st.engines.plan_fn is not None and not a.leukapheresis.apl_suspected and any(
            r.get("resourceType") == "ServiceRequest" for r in orders):
        from leukos.domain.assessment import jsonable
        try:
            plan = jsonable(st.engines.plan(case, {}, st.kb, a))
        except ValueError:  # the planner's user errors (e.g. no weight): the card says no plan
            plan = None
    return order_cards(orders, case, a, st.kb, hook_instance=req.hookInstance, base_url=_base_url(request),
                       page_url=page_url, plan=plan)


@router.post("/cds-services/{service_id}", response_model=CdsResponse, response_model_exclude_none=True,
             summary="Call a CDS service",
             responses={**_RESPONSES, 412: {"description": "Required prefetch missing and no fhirServer"}})
async def call_service(service_id: str, body: CdsRequest, request: Request,
                       _caller=Depends(cds_caller)) -> CdsResponse:
    svc = SERVICES.get(service_id)
    if svc is None:
        raise HTTPException(404, f"no CDS service {service_id!r}")
    request.state.audit_subtype = svc.hook
    if body.hook != svc.hook:
        raise FhirInputError(ErrorDetail(field="hook", value=body.hook, expected=svc.hook,
                                         fix=f"call {service_id} for the {svc.hook} hook only"))
    cards = await svc.handler(request, body)
    request.state.audit_cards = [c.uuid for c in cards if c.uuid]
    return CdsResponse(cards=cards)


@router.post("/cds-services/{service_id}/feedback", summary="Card feedback (idempotent)",
             responses={k: _RESPONSES[k] for k in (400, 404, 413, 422)})
async def feedback(service_id: str, body: Feedback, request: Request, _caller=Depends(cds_caller)) -> dict:
    if service_id not in SERVICES:
        raise HTTPException(404, f"no CDS service {service_id!r}")
    st = service_state(request)
    request.state.audit_subtype = "feedback"
    request.state.audit_cards = [f.card for f in body.feedback]
    store: FeedbackStore = st.feedback
    new = sum(store.add(service_id, f.model_dump(mode="json")) for f in body.feedback)
    return {"received": len(body.feedback), "new": new,
            "at": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")}
