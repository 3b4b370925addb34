"""REST endpoints of the follow-up registry: ``/api/patients/…`` (issue 13).

Same authentication as the other ``/api`` routes (:func:`~leukos.service.deps.api_caller`); every
call leaves one audit event (the audit middleware), tagged ``registry-read`` / ``registry-write``
with the patient's pseudonym (never the MRN). Handlers are plain ``def``: the database and the
follow-up model run in the thread pool, not on the event loop.

Errors: bad input 422 naming the field; unknown patient or procedure 404; a stale ``version``
409 (nothing written).

:func:`install` adds the routers, the 404/409 handlers and a database-backed CDS feedback store to
an app built by :func:`leukos.service.app.create_app`. The registry opens lazily on the first call
(``app.state.registry_settings``, default from ``LEUKOS_*``), so an app that never touches it
creates no files.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import uuid
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi import Path as FastPath
from fastapi.responses import JSONResponse

from leukos.domain.assessment import jsonable
from leukos.errors import LeukosUserError
from leukos.registry import RegistrySettings, open_registry
from leukos.registry.changes import Actor
from leukos.registry.errors import ConflictError, MigrationBlockedError, UnknownRecordError
from leukos.registry.inputs import (
    FeedbackIn,
    LabIn,
    PatientIn,
    PatientUpdate,
    ProcedureIn,
    ProcedureUpdate,
    TreatmentIn,
    parse,
)
from leukos.registry.settings import SQLITE_FILE
from leukos.service.deps import api_caller, service_state

if TYPE_CHECKING:
    from leukos.registry.store import Registry

__all__ = ["router", "install", "registry_of", "caller_actor", "registry_if_present", "registry_cards", "warm_up", "RegistryFeedbackStore"]

_ERR = {"content": {"application/json": {"schema": {"type": "object"}}}}
router = APIRouter(prefix="/api/patients", tags=["registry"], responses={
    400: {"description": "The body is not valid JSON"},
    401: {"description": "Bearer token (API token or client JWT) missing or refused"},
    404: {"description": "Unknown patient or procedure", **_ERR},
    409: {"description": "The record changed since you read it (stale version): nothing written", **_ERR},
    422: {"description": "Bad input: field, value, expected and fix for each problem", **_ERR}})
_lock = threading.Lock()


def _settings(app: FastAPI) -> RegistrySettings:
    """``app.state.registry_settings`` when a caller set it, else from ``LEUKOS_*`` (not stored, so that
    "configured" keeps meaning "someone asked for a registry")."""
    s = getattr(app.state, "registry_settings", None)
    if s is not None:
        return s
    env = dict(os.environ)
    service = getattr(getattr(app.state, "leukos", None), "settings", None)
    if getattr(service, "data_dir", None) is not None:  # one data folder for the service and its registry
        env["LEUKOS_DATA_DIR"] = str(service.data_dir)
    return RegistrySettings.from_env(env)


def registry_of(app: FastAPI) -> Registry:
    """The app's registry, opened (and migrated) on first use."""
    reg = getattr(app.state, "registry", None)
    if reg is None:
        with _lock:
            reg = getattr(app.state, "registry", None)
            if reg is None:
                reg = app.state.registry = open_registry(_settings(app), app.state.leukos.kb)
    return reg


def registry_if_present(app: FastAPI) -> Registry | None:
    """The registry if it exists or is configured (``LEUKOS_DATA_DIR`` / ``LEUKOS_DATABASE_URL``, or
    ``app.state.registry_settings``); otherwise None: a CDS call never creates a database nobody asked for."""
    if getattr(app.state, "registry", None) is not None:
        return app.state.registry
    configured = getattr(app.state, "registry_settings", None) is not None or bool(
        os.environ.get("LEUKOS_DATA_DIR") or os.environ.get("LEUKOS_DATABASE_URL"))
    if configured:
        return registry_of(app)
    # Not configured, so SQLite in the service's data folder (or the default one): does its file exist?
    # (Called on every patient-view: no copy of the environment, no path resolution.)
    service = getattr(getattr(app.state, "leukos", None), "settings", None)
    data_dir = getattr(service, "data_dir", None)
    if not os.path.exists(_sqlite_file(None if data_dir is None else str(data_dir),
                                       os.getcwd() if data_dir is None else "")):
        return None
    return registry_of(app)


@lru_cache(maxsize=16)
def _sqlite_file(data_dir: str | None, cwd: str) -> str:
    """The SQLite file of an unconfigured registry (in the service's data folder, else the default one)."""
    s = RegistrySettings.from_env({"LEUKOS_DATA_DIR": data_dir} if data_dir is not None else {}, cwd=Path(cwd))
    return str(s.data_dir / SQLITE_FILE)


def _reg(request: Request, pseudonym: str | None, kind: str) -> Registry:
    """The registry for one call, tagged for the audit log; a write acts as the authenticated caller (the
    audit log's requestor), so the registry's change history names the same caller."""
    request.state.audit_subtype = f"registry-{kind}"
    if pseudonym:
        request.state.audit_patient = pseudonym
    reg = registry_of(request.app)
    return reg.acting_as(caller_actor(request, "api")) if kind == "write" else reg


def caller_actor(request: Request, surface: str) -> Actor:
    """The actor of a service write: the caller :func:`~leukos.service.deps.api_caller` authenticated (the
    JWT issuer, "api-token" or "anonymous-dev"), as the audit middleware names the requestor."""
    caller = getattr(request.state, "caller", None)
    return Actor(caller.label if caller is not None else "unauthenticated", surface)


@router.get("", summary="Ward list: active patients, latest WBC, next session, flags (paginated)")
def ward_list(request: Request, page: int = Query(1, ge=1, le=1_000_000), per_page: int = Query(50, ge=1, le=500),
              ward: str | None = Query(None, max_length=64), _caller=Depends(api_caller)) -> dict[str, Any]:
    return jsonable(_reg(request, None, "read").ward_list(page=page, per_page=per_page, ward=ward))


@router.post("", status_code=201, summary="Register a patient (MRN stored in its own column, never logged)")
def add_patient(request: Request, body: PatientIn, _caller=Depends(api_caller)) -> dict[str, Any]:
    reg = _reg(request, body.pseudonym, "write")
    p = reg.add_patient(body)
    request.state.audit_patient = p["pseudonym"]
    return jsonable(p)


@router.get("/{pseudonym}", summary="A patient's timeline: labs, procedures with counts and adverse events, issued outputs")
def timeline(request: Request, pseudonym: str, _caller=Depends(api_caller)) -> dict[str, Any]:
    return jsonable(_reg(request, pseudonym, "read").timeline(pseudonym))


@router.patch("/{pseudonym}", summary="Update a patient (send the version you read)")
def update_patient(request: Request, pseudonym: str, body: PatientUpdate, _caller=Depends(api_caller)) -> dict[str, Any]:
    return jsonable(_reg(request, pseudonym, "write").update_patient(pseudonym, body))


@router.get("/{pseudonym}/changes", summary="Who changed this patient's records, when, through which surface, "
                                            "what and which fields (newest first; names only, never values)")
def changes(request: Request, pseudonym: str, limit: int = Query(50, ge=1, le=1000),
            _caller=Depends(api_caller)) -> dict[str, Any]:
    return {"changes": jsonable(_reg(request, pseudonym, "read").changes(pseudonym, limit=limit))}


@router.get("/{pseudonym}/follow-up", summary="Count trend, predicted vs observed fall per session, next session, flags")
def follow_up(request: Request, pseudonym: str, _caller=Depends(api_caller)) -> dict[str, Any]:
    return _reg(request, pseudonym, "read").follow_up(pseudonym).to_dict()


@router.post("/{pseudonym}/labs", status_code=201, summary="Add lab results (unit-normalised; repeated source ids skipped)")
def add_labs(request: Request, pseudonym: str, body: list[LabIn], _caller=Depends(api_caller)) -> dict[str, Any]:
    reg = _reg(request, pseudonym, "write")
    return reg.add_labs(pseudonym, body, recorded_by=_caller.label)


@router.post("/{pseudonym}/labs/fhir", status_code=201,
             summary="Import counts from a FHIR R4 Bundle (idempotent: Observation ids are remembered)")
async def import_fhir(request: Request, pseudonym: str, body: dict[str, Any] = Body(...),
                      _caller=Depends(api_caller)) -> dict[str, Any]:
    from leukos.registry.fhir_io import labs_from_bundle

    reg = _reg(request, pseudonym, "write")

    def job() -> dict[str, Any]:  # FHIR validation and unit conversion are CPU work
        labs, notes = labs_from_bundle(body, reg.kb, reg.get_patient(pseudonym))
        return reg.import_labs(pseudonym, labs, recorded_by=_caller.label) | {"notes": notes}

    return await service_state(request).api_pool.run(job)


@router.post("/{pseudonym}/procedures", status_code=201, summary="Record a leukapheresis as performed")
def record_procedure(request: Request, pseudonym: str, body: ProcedureIn, _caller=Depends(api_caller)) -> dict[str, Any]:
    return jsonable(_reg(request, pseudonym, "write").record_procedure(pseudonym, body))


@router.put("/{pseudonym}/procedures/{procedure_id}", summary="Correct a procedure record (send the version you read)")
def update_procedure(request: Request, pseudonym: str, body: ProcedureUpdate,
                     procedure_id: int = FastPath(..., ge=1, le=2**62),
                     _caller=Depends(api_caller)) -> dict[str, Any]:
    return jsonable(_reg(request, pseudonym, "write").update_procedure(pseudonym, procedure_id, body))


@router.post("/{pseudonym}/treatments", status_code=201, summary="Record a cytoreductive treatment (marked on the course)")
def add_treatment(request: Request, pseudonym: str, body: TreatmentIn, _caller=Depends(api_caller)) -> dict[str, Any]:
    return jsonable(_reg(request, pseudonym, "write").add_treatment(pseudonym, body))


@router.post("/{pseudonym}/assessments", status_code=201, summary="Assess a case and store the assessment as issued")
async def issue_assessment(request: Request, pseudonym: str, body: dict[str, Any] = Body(...),
                           _caller=Depends(api_caller)) -> dict[str, Any]:
    st, reg = service_state(request), _reg(request, pseudonym, "write")

    def job() -> dict[str, Any]:
        case = _case_of_patient(body, reg, pseudonym, st.kb)
        out = st.engines.assess(case, st.kb).to_dict()
        return {"id": reg.record_issued(pseudonym, "assessment", out), "assessment": out}

    return await st.api_pool.run(job)  # the REST API's computations share its bounded pool (not the CDS one)


@router.post("/{pseudonym}/plans", status_code=201, summary="Plan a leukapheresis for a case and store the plan as issued")
async def issue_plan(request: Request, pseudonym: str, body: dict[str, Any] = Body(...),
                     _caller=Depends(api_caller)) -> dict[str, Any]:
    st, reg = service_state(request), _reg(request, pseudonym, "write")

    def job() -> dict[str, Any]:
        case = _case_of_patient(body, reg, pseudonym, st.kb)
        out = jsonable(st.engines.plan(case, {}, st.kb, st.engines.assess(case, st.kb)))
        return {"id": reg.record_issued(pseudonym, "plan", out), "plan": out}

    return await st.api_pool.run(job)


def _case_of_patient(body: dict[str, Any], reg: Registry, pseudonym: str, kb: Any) -> Any:
    """The case of a request body, once it is known to be about this registered patient (404 for an
    unknown patient before any work; a FHIR Bundle about another patient is refused)."""
    import json

    from leukos.registry.fhir_io import check_case_about_patient
    from leukos.service.engines import load_case

    check_case_about_patient(body, reg.get_patient(pseudonym))
    return load_case(json.dumps(body), kb, name="body")


@router.get("/{pseudonym}/fhir", summary="The patient's course as a FHIR R4 Bundle (Patient, Procedure, Observation, AdverseEvent)",
            response_class=JSONResponse, responses={200: {"description": "A FHIR R4 collection Bundle", "content": {
                "application/fhir+json": {"schema": {"type": "object"}}}}})
def export_fhir(request: Request, pseudonym: str, _caller=Depends(api_caller)) -> JSONResponse:
    from leukos.registry.fhir_io import export_bundle

    reg = _reg(request, pseudonym, "read")
    return JSONResponse(export_bundle(reg.timeline(pseudonym)), media_type="application/fhir+json")


class RegistryFeedbackStore:
    """CDS card feedback kept in the registry database (survives restarts) when the registry exists or
    is configured; otherwise in the in-memory store it wraps. Same interface as ``FeedbackStore``."""

    def __init__(self, app: FastAPI, fallback: Any):
        self.app, self.fallback = app, fallback

    def add(self, service_id: str, item: dict[str, Any], *, requestor: str = "unknown") -> bool:
        """``requestor``: the CDS client that sent the feedback (its JWT issuer), for the change history."""
        reg = registry_if_present(self.app)
        if reg is None:
            return self.fallback.add(service_id, item, requestor=requestor)
        return reg.acting_as(Actor(requestor, "api")).add_feedback(service_id, parse(FeedbackIn, {
            k: item[k] for k in ("card", "outcome", "outcomeTimestamp", "overrideReasons", "acceptedSuggestions")
            if item.get(k) is not None}))

    def __len__(self) -> int:
        reg = registry_if_present(self.app)
        return len(self.fallback) if reg is None else reg.feedback_count()


def registry_cards(app: FastAPI, patient_fhir_id: str | None, *, hook_instance: str, base_url: str) -> list:
    """patient-view: one card on the registered course ("session 2 due; post-session count missing"),
    or none when the patient is not in the registry. Called by the CDS route (run it in a thread).
    Most calls find no registry: that answer comes before any import the card needs.

    The registry is an extra: nothing that goes wrong while building its card (a database outage, a
    stored record the follow-up model cannot take, a bug) may withhold the other cards. Any exception
    is logged (its type only: no identifiers, no message that could quote a record) and no registry
    card is given."""
    try:
        return _registry_cards(app, patient_fhir_id, hook_instance=hook_instance, base_url=base_url)
    except _database_error() as exc:
        logging.getLogger("leukos.service").warning("registry unavailable for the patient-view card: %s",
                                                    type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - see the docstring: the other cards must still be given
        logging.getLogger("leukos.service").error("registry follow-up card not given (%s while building it)",
                                                  type(exc).__name__)
    return []


def _registry_cards(app: FastAPI, patient_fhir_id: str | None, *, hook_instance: str, base_url: str) -> list:
    reg = registry_if_present(app) if patient_fhir_id else None
    pseudonym = reg.find_by_fhir_id(patient_fhir_id) if reg is not None else None
    if pseudonym is None:
        return []
    f = reg.follow_up(pseudonym)
    from leukos.service.cds.cards import short_summary, source_for
    from leukos.service.cds.models import Card, Link

    labels = [fl.label if fl.session is None else f"{fl.label} (session {fl.session})" for fl in f.flags]
    nxt = f.next_session
    lines = [f"**Leukapheresis follow-up ({len(f.sessions)} session(s) recorded)**", ""]
    lines += [f"- {w}" for w in f.working]
    lines += [f"- **{fl.label}**: {fl.detail} {fl.action}" for fl in f.flags]
    lines += ["", "Not a medical device: supports, does not replace, clinical judgement."]
    summary = "; ".join(labels) if labels else (
        f"Next session predicted fall {nxt.predicted_fall_pct['median']:.0f} %" if nxt else "Leukapheresis course recorded")
    warn = any(fl.code in ("post_count_missing", "platelets_low", "ica_low", "rebound", "next_session_due") for fl in f.flags)
    return [Card(uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{hook_instance}/registry")), summary=short_summary(summary),
                 detail="\n".join(lines), indicator="warning" if warn else "info", source=source_for(base_url),
                 links=[Link(label="Open the patient's course in leukos", url=f"{base_url}/ui/patients/{pseudonym}",
                             type="absolute")])]


def warm_up(app: FastAPI) -> None:
    """Open (and migrate) the registry before the first call, when one exists or is configured. A
    database that cannot be reached is logged and left for the first call, which will try again and,
    if it still cannot, give its other cards without the registry's: the registry is an extra, and its
    outage must not keep the service from starting."""
    try:
        registry_if_present(app)
    except _database_error() as exc:
        logging.getLogger("leukos.service").warning(
            "registry unavailable at start-up (%s); it will be opened on first use", type(exc).__name__)


def _database_error() -> type[Exception]:
    """SQLAlchemy's base error, imported when an exception is being matched (an ``except`` clause
    evaluates its class only then), not on every patient-view call."""
    from sqlalchemy.exc import SQLAlchemyError

    return SQLAlchemyError


def _status_handler(status: int):
    async def handler(request: Request, exc: LeukosUserError) -> JSONResponse:
        return JSONResponse(status_code=status, content=exc.to_dict())
    return handler


async def _method_not_allowed(request: Request, exc: Exception):
    """405 with every method the path supports in ``Allow`` (Starlette names only the first route's,
    and /api/patients has GET and POST on separate routes), in the service's common error shape
    (error, title, details with field, value, expected and fix)."""
    from starlette.routing import Match

    from leukos.service.http_errors import error_response

    def routes(items):  # FastAPI >= 0.165 keeps an included router's routes behind effective_candidates()
        for route in items:
            nested = getattr(route, "effective_candidates", None)
            if callable(nested):
                yield from routes(nested())
            else:
                yield route

    allowed: set[str] = {m.strip() for m in (getattr(exc, "headers", None) or {}).get("Allow", "").split(",") if m.strip()}
    for route in routes(request.app.router.routes):
        match, _ = route.matches({**request.scope, "method": "__none__"})
        if match != Match.NONE and getattr(route, "methods", None):
            allowed |= set(route.methods)
    allow = ", ".join(sorted(allowed))
    return error_response(405, "MethodNotAllowed", "This address does not take this method", [
        {"field": "(method)", "value": request.method, "expected": f"one of {allow}" if allow else "another method",
         "fix": "use a method listed in the Allow header (see /docs for what each one does)"}],
        headers={"Allow": allow})


def install(app: FastAPI) -> None:
    """Add the registry's API and UI routers, its 404/409 errors and the persistent CDS feedback store."""
    if importlib.util.find_spec("sqlalchemy") is None:
        logging.getLogger("leukos.service").warning("the follow-up registry is not in this build (pip install leukos[registry])")
        return
    from leukos.service import registry_ui

    app.add_exception_handler(UnknownRecordError, _status_handler(404))
    app.add_exception_handler(ConflictError, _status_handler(409))
    app.add_exception_handler(MigrationBlockedError, _status_handler(409))
    app.add_exception_handler(405, _method_not_allowed)
    app.include_router(router)
    app.include_router(registry_ui.router)
    app.state.leukos.feedback = RegistryFeedbackStore(app, app.state.leukos.feedback)
    # Absent until opened or configured; set to None so that every patient-view's look-up is a plain
    # read (Starlette's State raises, and formats, an AttributeError for an attribute never set).
    for name in ("registry", "registry_settings"):
        if getattr(app.state, name, None) is None:
            setattr(app.state, name, None)
