"""CDS Hooks 2.0 endpoints: discovery, ``patient-view``, ``order-select`` and feedback.

- ``GET /cds-services`` — §"Discovery"
- ``POST /cds-services/{id}`` — §"Calling a CDS Service"; 412 when required prefetch is missing
  and no ``fhirServer`` is given (§"Prefetch")
- ``POST /cds-services/{id}/feedback`` — §"Feedback"; idempotent: the same card outcome
  reported twice is stored once (persisted in the service's state store)

Hooks are registered with :func:`hook`; each handler is a plain function of a :class:`HookCall`
returning cards, run in the worker pool. The event loop only reads the body and, when prefetch is
missing, awaits the ``fhirServer`` reads; parsing, validation, rules and rendering run in the pool
(in one hop when nothing has to be read from the ``fhirServer``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.requests import ClientDisconnect

from leukos.domain.assessment import jsonable
from leukos.domain.case import Case
from leukos.errors import ErrorDetail, FhirInputError, LeukosUserError
from leukos.interop.record_notes import not_assessed, shown_with_findings
from leukos.service.cds.cards import cards_for
from leukos.service.cds.models import Card, CdsRequest, CdsResponse, Discovery, Feedback, Service
from leukos.service.cds.orders import order_cards, plan_problem, selected_orders
from leukos.service.cds.patient_check import check_patient_id, check_prefetch_patient
from leukos.service.cds.prefetch import bundle_from_prefetch, gather, prefetch_at_hand, prefetch_templates
from leukos.service.deps import cds_caller, cds_credentials, service_state, verify_credentials
from leukos.service.engines import EngineUnavailable
from leukos.service.http_errors import JsonBytes, parse_json_body
from leukos.service.views import finding_views

__all__ = ["router", "hook", "SERVICES", "HookCall", "CaseFromBody", "OPENAPI_COMPONENTS"]

_ERR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/LeukosError"}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "CDS client JWT missing or refused", "content": _ERR_BODY},
    404: {"description": "No such CDS service", "content": _ERR_BODY},
    413: {"description": "Request body too large", "content": _ERR_BODY},
    422: {"description": "Malformed request, a bad value, or resources about another patient "
                         "(field, value, expected, fix)", "content": _ERR_BODY},
    503: {"description": "Busy or over the wall time (Retry-After), audit unavailable, or a part of the "
                         "core not in this build", "content": _ERR_BODY}}
router = APIRouter(tags=["cds-hooks"], responses={401: _RESPONSES[401]})


@lru_cache(maxsize=1)
def OPENAPI_COMPONENTS() -> dict[str, Any]:  # noqa: N802 - a constant, built lazily
    """Schemas of the bodies these routes parse themselves (off the event loop, within limits)."""
    out: dict[str, Any] = {}
    for model in (CdsRequest, Feedback):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    out["LeukosError"] = {"type": "object", "required": ["error", "title", "details"], "properties": {
        "error": {"type": "string"}, "title": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "value": {}, "expected": {"type": "string"}, "fix": {"type": "string"}}}}}}
    return out


def _body_of(model: type) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


@dataclass
class HookCall:
    """One CDS call as a hook handler sees it (in a worker thread: handlers are plain functions)."""

    req: CdsRequest
    prefetch: dict[str, Any]
    patient_id: str
    state: Any  # leukos.service.app.ServiceState
    base_url: str
    notes: list[str] = field(default_factory=list)  # what could not be read or disagrees: on every card
    app: Any = None  # the FastAPI app, for the follow-up registry's card
    body: bytes | None = None  # the request's body when it holds the whole prefetch and no token (CaseFromBody)


# A card link keeps its call's body (CaseFromBody) only up to this size (a software limit: an ordinary
# patient-view body is ~20 KB); a larger one keeps the imported case, so that 1000 links never hold
# more than ~64 MB of bodies, whatever their padding.
KEPT_BODY_MAX_BYTES = 65_536


@dataclass(frozen=True, slots=True)
class CaseFromBody:
    """The case behind a card link, kept as the call's request body and imported again when the page
    is opened (:class:`leukos.service.ui.PageCache`): one bytes object instead of a case's hundreds of
    small ones. Only for a body that holds the whole prefetch and no ``fhirAuthorization`` (a token is
    never kept) and is at most :data:`KEPT_BODY_MAX_BYTES` long. The import is a function of the body
    (and of the knowledge base and allow-list given here): the page shows the case the cards came from."""

    body: bytes
    kb: Any
    allowlist: tuple[str, ...]

    def case(self) -> Case:
        from leukos.interop.fhir import case_from_fhir

        req = parse_json_body(self.body, CdsRequest)
        prefetch = prefetch_at_hand(req, allowlist=self.allowlist) or {}
        return case_from_fhir(bundle_from_prefetch(prefetch), self.kb, leave_out_unusable=True, _tree_checked=True)


@dataclass(frozen=True)
class _Registered:
    hook: str
    id: str
    title: str
    description: str
    handler: Callable[[HookCall], list[Card]]


SERVICES: dict[str, _Registered] = {}


def hook(hook_name: str, service_id: str, *, title: str, description: str):
    """Register a CDS service handler ``fn(call: HookCall) -> list[Card]`` at ``/cds-services/{service_id}``.

    The handler runs in the service's worker pool, never on the event loop.
    """
    def deco(fn):
        SERVICES[service_id] = _Registered(hook_name, service_id, title, description, fn)
        return fn
    return deco


def _base_url(request: Request) -> str:
    st = service_state(request)
    return (st.settings.public_base_url or str(request.base_url)).rstrip("/")


@router.get("/cds-services", response_model=Discovery, response_model_exclude_none=True,
            summary="CDS Hooks discovery")
async def discovery(request: Request, _caller=Depends(cds_caller)) -> Discovery:
    templates = prefetch_templates(service_state(request).kb)
    return Discovery(services=[Service(hook=s.hook, id=s.id, title=s.title, description=s.description,
                                       prefetch=templates) for s in SERVICES.values()])


def case_and_assessment(call: HookCall) -> tuple[Case, Any, str | None]:
    """Import the prefetch (FHIR R4B-validated) and assess it for the cards; a page token for the card link.

    The cards never show the differential, so it is ranked (the working diagnosis the advice follows)
    but not explained: that assessment is for this call's cards only (it cannot be reported:
    ``differential_explained`` is False). The page behind the link keeps the case and assesses it in
    full when opened (``leukos.service.ui.cds_page``, in the worker pool)."""
    st = call.state
    try:
        from leukos.interop.fhir import case_from_fhir
    except ImportError:
        raise EngineUnavailable("the FHIR importer (leukos.interop.fhir.case_from_fhir)", "leukos.interop.fhir") from None
    check_prefetch_patient(call.prefetch, call.patient_id, call.req.context)
    # a result that cannot be used (implausible, no unit or one that does not convert) is left out and
    # said: a refused call would show no card at all (leukos.interop.unusable)
    case = case_from_fhir(bundle_from_prefetch(call.prefetch), st.kb, leave_out_unusable=True, _tree_checked=True)
    # what the record holds that could not be used, shown on every card: conflicting or unusable
    # results, a birth date
    call.notes.extend(n for n in case.import_notes if shown_with_findings(n))
    assessment = st.engines.assess(case, st.kb, explain_differential=False)
    page_url = None
    if st.pages is not None:
        kept = case if call.body is None else CaseFromBody(call.body, st.kb, st.settings.fhir_server_allowlist)
        page_url = f"{call.base_url}/ui/cds/{st.pages.put(kept)}"
    return case, assessment, page_url


CARD_NOTES_MAX = 12  # notes listed on a card (a software choice: the page behind the link lists them all)


def with_notes(cards: list[Card], notes: list[str], call: HookCall) -> list[Card]:
    """Say on every card what could not be read (or conflicts); one info card if nothing else is said."""
    if not notes:
        return cards
    shown = notes[:CARD_NOTES_MAX]  # a record with hundreds of unusable results still gives a readable card
    text = "\n".join(f"- {n}" for n in shown)
    if len(notes) > len(shown):
        text += (f"\n- … and {len(notes) - len(shown)} more"
                 + (": the full list is on the leukos page behind this card's link" if any(c.links for c in cards)
                    else ""))
    if not cards:
        from leukos.service.cds.cards import short_summary, source_for
        names = not_assessed(notes)
        summary = (f"Not assessed: {', '.join(names)} (the record's results cannot be used; see the detail)"
                   if names else "Some patient data could not be read or disagree: not assessed")
        return [Card(summary=short_summary(summary),
                     detail="**Not everything could be assessed**\n\n" + text, indicator="info",
                     source=source_for(call.base_url))]
    block = "**Not everything could be assessed**\n\n" + text
    return [c.model_copy(update={"detail": _after_points(c.detail or "", block)}) for c in cards]


def _after_points(detail: str, block: str) -> str:
    """``detail`` with ``block`` after the card's title and its points, before what is missing, the
    working, the references and the footer: what could not be used is read with the finding, not after
    the disclaimer."""
    title, sep, rest = detail.partition("\n\n")
    if not sep:
        return f"{detail}\n\n{block}" if detail else block
    points, sep, after = rest.partition("\n\n")
    if not points.startswith("- "):
        return f"{title}\n\n{block}\n\n{rest}"
    return f"{title}\n\n{points}\n\n{block}" + (f"\n\n{after}" if sep else "")


@hook("patient-view", "leukos-patient-view", title="leukos: extreme leukocytosis review",
      description="Hyperleukocytosis and leukostasis, tumour lysis, DIC, lab artefacts and APL warnings "
                  "from the patient's recent blood count and chemistry, with the working and references.")
def _patient_view(call: HookCall) -> list[Card]:
    case, a, page_url = case_and_assessment(call)
    cards = cards_for(finding_views(a, call.state.kb), a, call.state.kb, hook_instance=call.req.hookInstance,
                      base_url=call.base_url, page_url=page_url)
    if call.app is None:
        return cards
    from leukos.service.registry_api import registry_cards  # the patient's recorded course, if registered

    return cards + registry_cards(call.app, call.patient_id, hook_instance=call.req.hookInstance, base_url=call.base_url)


@hook("order-select", "leukos-order-select", title="leukos: orders in extreme leukocytosis",
      description="Cautions for red-cell transfusion before cytoreduction and G-CSF while the count is extreme; "
                  "a planning card for a leukapheresis request (never when APL is known or suspected).")
def _order_select(call: HookCall) -> list[Card]:
    st = call.state
    orders = selected_orders(call.req.context)
    if not orders:
        return []
    case, a, page_url = case_and_assessment(call)
    plan = None
    no_plan = None  # why there is no plan, for the card: the planner is missing, or it cannot plan this case
    if not a.leukapheresis.apl_suspected and any(r.get("resourceType") == "ServiceRequest" for r in orders):
        if st.engines.plan_fn is None:
            no_plan = "The leukapheresis planner is not available in this build: no volumes computed."
        else:
            try:
                plan = jsonable(st.engines.plan(case, {}, st.kb, a))
            except LeukosUserError as exc:  # the planner's user errors (e.g. no weight): the card says why
                no_plan = plan_problem(exc, st.kb)
    return order_cards(orders, case, a, st.kb, hook_instance=call.req.hookInstance, base_url=call.base_url,
                       page_url=page_url, plan=plan, no_plan=no_plan)


def _parse_call(raw: bytes, svc: _Registered) -> tuple[CdsRequest, str]:
    req = parse_json_body(raw, CdsRequest)
    if req.hook != svc.hook:
        raise FhirInputError(ErrorDetail(field="hook", value=req.hook, expected=svc.hook,
                                         fix=f"call {svc.id} for the {svc.hook} hook only"))
    if svc.hook == "order-select":
        _check_order_context(req.context)
    return req, check_patient_id(req.context.get("patientId"))


def _check_order_context(context: dict[str, Any]) -> None:
    drafts = context.get("draftOrders")
    if drafts is not None and not (isinstance(drafts, dict) and drafts.get("resourceType") == "Bundle"
                                   and isinstance(drafts.get("entry", []), list)):
        raise FhirInputError(ErrorDetail(field="context.draftOrders", value=type(drafts).__name__ if not isinstance(
            drafts, str) else drafts, expected="a FHIR Bundle of the draft orders",
            fix='send {"resourceType": "Bundle", "type": "collection", "entry": [...]} (order-select hook)'))
    selections = context.get("selections")
    if selections is not None and not (isinstance(selections, list) and all(isinstance(x, str) for x in selections)):
        raise FhirInputError(ErrorDetail(field="context.selections", value=type(selections).__name__,
                                         expected="a list of 'Type/id' strings", fix="list the selected orders"))


def _run_hook(svc: _Registered, call: HookCall) -> tuple[bytes, list[str]]:
    cards = with_notes(svc.handler(call), call.notes, call)
    return CdsResponse(cards=cards).json_bytes(), [
        c.uuid for c in cards if c.uuid]


@router.post("/cds-services/{service_id}", response_model=CdsResponse, response_model_exclude_none=True,
             summary="Call a CDS service", openapi_extra=_body_of(CdsRequest),
             responses={**_RESPONSES, 412: {"description": "The laboratory results could not be obtained "
                                                           "(not prefetched and no readable fhirServer)",
                                            "content": _ERR_BODY}})
async def call_service(service_id: str, request: Request) -> JsonBytes:
    # Authentication before anything else is answered or parsed: an unknown service is named (404)
    # only to a verified caller. For a known service the JWT is verified in the pool, in the call's
    # own job and before the body is parsed (the body is read first: the body-size limit bounds it);
    # a call without a bearer token is refused before its body is read.
    svc = SERVICES.get(service_id)
    if svc is None:
        await cds_caller(request)
        raise HTTPException(404, f"no CDS service {service_id!r}")
    credentials = cds_credentials(request)
    request.state.audit_subtype = svc.hook
    st = service_state(request)
    raw = await _read_body(request)
    call, done = await st.pool.run(_parse_and_run, raw, svc, st, _base_url(request), request.app, request.state,
                                   credentials)
    if call is not None:  # prefetch to read from the fhirServer: awaited on the loop, then the rest in the pool
        call.prefetch = await gather(call.req, st.kb, timeout_s=st.settings.fhir_timeout_s,
                                     allowlist=st.settings.fhir_server_allowlist, notes=call.notes, run=st.pool.run)
        done = await st.pool.run(_run_hook, svc, call)
    payload, card_ids = done
    request.state.audit_cards = card_ids
    return JsonBytes(payload)


async def _read_body(request: Request) -> bytes:
    """The request body, as ``await request.body()`` reads it (the same messages, the same
    ``ClientDisconnect``), without Starlette's async generator and its closing context: ~14 µs of
    the hot route's CPU per call. The body-size limit applies as before (it wraps ``receive``)."""
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            if body:
                chunks.append(body)
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def _parse_and_run(raw: bytes, svc: _Registered, st: Any, base_url: str, app: Any,
                   audit: Any, credentials: tuple[str, str] | None = None
                   ) -> tuple[HookCall | None, tuple[bytes, list[str]] | None]:
    """In the pool: verify the caller (``credentials``: see :func:`~leukos.service.deps.cds_credentials`),
    parse the call and, when no ``fhirServer`` read is needed (the prefetch is complete, or what is
    missing cannot be read), run the hook too: one hop off the event loop for the whole call.
    ``audit`` is ``request.state``: the caller, patient and hook instance are recorded even if the hook fails.

    Returns ``(call, None)`` when the prefetch must be read from the ``fhirServer`` first, else
    ``(None, (response JSON, card ids))``: the call and its parsed request are then freed here, in the
    thread that built and last used them (freeing them on the event loop cost it ~0.07 ms a call)."""
    verify_credentials(st, credentials, audit)
    req, patient_id = _parse_call(raw, svc)
    audit.audit_patient = patient_id
    audit.audit_hook_instance = req.hookInstance
    call = HookCall(req=req, prefetch={}, patient_id=patient_id, state=st, base_url=base_url, app=app)
    if svc.hook != "order-select" or selected_orders(req.context):
        prefetch = prefetch_at_hand(req, allowlist=st.settings.fhir_server_allowlist, notes=call.notes)
        if prefetch is None:
            return call, None
        call.prefetch = prefetch
        if req.fhirAuthorization is None and len(raw) <= KEPT_BODY_MAX_BYTES:  # the link may keep it (CaseFromBody)
            call.body = raw
    return None, _run_hook(svc, call)


def _store_feedback(raw: bytes, service_id: str, store: Any, requestor: str) -> tuple[int, int, list[str]]:
    body = parse_json_body(raw, Feedback)
    new = sum(store.add(service_id, f.model_dump(mode="json"), requestor=requestor) for f in body.feedback)
    return len(body.feedback), new, [f.card for f in body.feedback]


@router.post("/cds-services/{service_id}/feedback", summary="Card feedback (idempotent, persisted)",
             openapi_extra=_body_of(Feedback), responses={k: _RESPONSES[k] for k in (404, 413, 422)})
async def feedback(service_id: str, request: Request, _caller=Depends(cds_caller)) -> dict:
    if service_id not in SERVICES:
        raise HTTPException(404, f"no CDS service {service_id!r}")
    st = service_state(request)
    request.state.audit_subtype = "feedback"
    raw = await request.body()
    received, new, cards = await st.pool.run(_store_feedback, raw, service_id, st.feedback, _caller.label)
    request.state.audit_cards = cards
    return {"received": received, "new": new, "at": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")}
