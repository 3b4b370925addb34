"""The leukos ASGI app: REST API, CDS Hooks 2.0 services and the clinician web UI in one FastAPI app.

Build it with :func:`create_app` and a :class:`~leukos.service.settings.ServiceSettings`; nothing is
read from the environment or the disk at import time.

Errors: one shape everywhere (:mod:`leukos.service.http_errors` has the table): bad input → 422 with
field, value, expected and fix; authentication → 401; CDS prefetch that cannot be obtained → 412;
busy, over the wall time or audit trail unwritable → 503 (``Retry-After`` when busy). A bug is a 500
whose traceback (without the exception message, which may quote input) goes to the server log.

Middleware, outermost first: audit (every call, written before the response: fails closed) → body
size limit → bug containment → CORS → routes. Routers are listed in :data:`ROUTERS`; another
module adds its own router there (or with ``app.include_router`` on the built app).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leukos import __version__
from leukos.knowledge import KnowledgeBase, load_knowledge
from leukos.service.audit import AuditLog, AuditRecord, AuditUnavailable, load_pseudonym_key
from leukos.service.engines import Engines, default_engines
from leukos.service.http_errors import ContainBugs, error_response, install_error_handlers
from leukos.service.security import JwtVerifier
from leukos.service.settings import ServiceSettings
from leukos.service.state_store import StateStore
from leukos.service.workers import WorkPool

__all__ = ["create_app", "ServiceState", "STATIC_DIR", "ROUTERS", "settle_gc", "warm_up"]

log = logging.getLogger("leukos.service")
STATIC_DIR = Path(__file__).parent / "static"
# "module:attribute" of each APIRouter included by create_app, in order.
ROUTERS = ("leukos.service.api:router", "leukos.service.cds:router", "leukos.service.docs:router",
           "leukos.service.ui:router")


@dataclass
class ServiceState:
    """Everything a request handler needs, held on ``app.state.leukos``."""

    settings: ServiceSettings
    kb: KnowledgeBase
    engines: Engines
    verifier: JwtVerifier
    audit: AuditLog
    feedback: Any = None  # leukos.service.state_store.FeedbackStore
    pages: Any = None  # leukos.service.ui.PageCache: the cases behind CDS card links
    # CPU-bound work runs in a worker pool, never on the event loop: one pool per surface, so that no
    # surface can hold up another (the CDS services, the EHR's calls, have the largest)
    pool: WorkPool | None = None  # CDS Hooks services and JWT checks
    api_pool: WorkPool | None = None  # REST API computations (/api/assess, /api/plan, /api/simulate)
    page_pool: WorkPool | None = None  # the web pages (assessment page, reports, PDFs, the page of a card link)
    store: StateStore | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # room for other modules' state


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``limit`` bytes with 413, before they are parsed."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._reject(send)
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge()
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        resp = error_response(413, "RequestTooLarge", "The request body is too large", [
            {"field": "body", "value": None, "expected": f"at most {self.limit} bytes",
             "fix": "send one case or one CDS request per call"}])
        await resp({"type": "http"}, None, send)  # type: ignore[arg-type]


class AuditMiddleware:
    """Write one AuditEvent per HTTP call (static assets excepted) *before* its response is sent.

    Refused and failed calls are recorded too (their status is what the client gets). If the event
    cannot be written the client gets 503 ``AuditUnavailable`` instead of the response: no call is
    ever served unrecorded (fails closed).
    """

    def __init__(self, app: ASGIApp, audit: AuditLog):
        self.app, self.audit = app, audit

    def _record(self, scope: Scope, status: int) -> None:
        state = scope.get("state") or {}
        caller = state.get("caller")
        client = scope.get("client")
        method = scope["method"]
        self.audit.append(AuditRecord(
            method=method, path=scope["path"], status=status,
            requestor=caller.label if caller is not None else "unauthenticated",
            client_address=client[0] if client else None,
            action={"GET": "R", "POST": "E", "DELETE": "D", "PUT": "U"}.get(method, "E"),
            subtype=state.get("audit_subtype"), patient_id=state.get("audit_patient"),
            hook_instance=state.get("audit_hook_instance"),
            card_uuids=tuple(state.get("audit_cards", ()))))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        recorded = False
        swallowed = False

        async def audited_send(msg: Message) -> None:
            nonlocal recorded, swallowed
            if swallowed:
                return  # the body of a response replaced by 503
            if msg["type"] == "http.response.start":
                recorded = True
                try:
                    self._record(scope, msg["status"])
                except AuditUnavailable as exc:
                    log.error("audit trail unavailable: %s; refusing the call", exc)
                    swallowed = True
                    resp = error_response(503, "AuditUnavailable", "The audit trail cannot be written, so leukos "
                                          "refuses to answer (every call must be recorded)", [],
                                          headers={"Retry-After": "60"})
                    await resp(scope, receive, send)
                    return
            await send(msg)

        try:
            await self.app(scope, receive, audited_send)
        except BaseException:
            if not recorded:
                try:
                    self._record(scope, 500)
                except AuditUnavailable:
                    log.error("audit trail unavailable while recording a failed call")
            raise


# Cyclic-GC thresholds of a serving process (CPython's defaults are 700, 10, 10). A patient-view call
# allocates thousands of containers and the CDS page cache keeps up to 1000 cases alive, so with the
# defaults full collections (each walking every live case) ran every ~200 calls and took 15-40 % of the
# CPU under load. A young collection is due when the net count of new containers reaches the first
# threshold; the calls in flight in the worker pool hold ~10,000 of them together, so at 5000 a young
# collection (all survivors: ~1.5 ms walking them) ran every ~50 calls: 0.04 ms per call. At 20,000
# the data of calls in flight no longer triggers them. Memory stays bounded: the cache is bounded, its
# evicted entries are freed by reference counting, and cyclic garbage is still collected (after at
# most 20,000 new containers).
GC_THRESHOLDS = (20_000, 20, 100)


def settle_gc() -> None:
    """Once, after :func:`create_app` in a server process: freeze what start-up built (knowledge
    base, models, code tables live for the whole process) out of the collector's generations, and
    set :data:`GC_THRESHOLDS`. Not for library use (the thresholds are process-wide)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def warm_up(app: FastAPI) -> None:
    """Once, before a server process takes calls: build what the first patient's call would otherwise
    build (measured: that call took 2.7 s instead of 7 ms, past many EHRs' CDS timeouts), from
    the knowledge base and the code only: no patient data, no audit line, nothing kept per patient.

    - the FHIR importer (its code tables) and the UCUM unit registry, with the conversion of every
      analyte's own unit (the registry's parser and definitions load on first use);
    - the wording memo's vocabulary (knowledge base, label table, the card-writing code's text);
    - the follow-up registry, when one is configured (opened and migrated, as the first card would;
      a database that cannot be reached is logged and left for the first call);
    - the web pages' templates, compiled (Jinja compiles each on its first render).

    Call it after :func:`create_app` and before :func:`settle_gc` (so that what it builds is frozen
    too). Not in :func:`create_app`: tests build many apps and call few of them.
    """
    import time

    from leukos.interop import fhir
    from leukos.present import labels
    from leukos.service import registry_api, registry_ui, ui
    from leukos.units import converter_for

    started = time.monotonic()
    st: ServiceState = app.state.leukos
    fhir.warm_tables(st.kb)
    conv = converter_for(st.kb)
    for name, analyte in st.kb.analytes.items():
        if analyte.unit:
            conv.factor(name, analyte.unit, field="(start-up)")
    labels(st.kb).vocabulary()
    registry_api.warm_up(app)
    ui.warm_up()
    registry_ui.warm_up()
    log.info("warmed up for the first call in %.1f s", time.monotonic() - started)


def create_app(settings: ServiceSettings, *, kb: KnowledgeBase | None = None, engines: Engines | None = None,
               jwks: dict[str, Any] | None = None) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings
        Typed settings (:meth:`ServiceSettings.from_env`). Outside development mode
        ``public_base_url`` and ``data_dir`` are required (:meth:`ServiceSettings.check_can_serve`).
    kb, engines, jwks
        Injected knowledge base, core functions and trusted-client JWKS (defaults: the bundled
        knowledge, the core's functions present in this build, ``settings.jwks_path``).

    Raises
    ------
    SettingsError
        A setting that cannot be served with. :class:`~leukos.service.audit.AuditLogCorrupt` if the
        audit file's chain is broken before its last line; ``AuditLogUnusable`` (a folder, a device,
        not writable), ``PseudonymKeyUnusable`` (the key file), ``StateStoreUnusable`` (the data
        folder or its state file): all user errors with one message, never a traceback.
    """
    from importlib import import_module

    settings.check_can_serve()
    kb = kb or load_knowledge()
    engines = engines or default_engines()
    store = StateStore.in_dir(settings.data_dir)
    key, key_source = load_pseudonym_key(settings.audit_key, settings.data_dir)
    audit = AuditLog(settings.audit_log_path, key=key)
    if audit.recovery:
        log.warning("%s", audit.recovery)
    if settings.data_dir is None:
        log.warning("no LEUKOS_DATA_DIR: replay store, feedback and the audit pseudonym key live in memory "
                    "and are lost on restart (development only)")
    log.info("audit pseudonym key: %s", key_source)
    # httpx logs every request URL at INFO; fhirServer URLs carry patient ids. Never log them.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)

    from leukos.service.ui import PageCache

    state = ServiceState(settings=settings, kb=kb, engines=engines,
                         verifier=JwtVerifier(settings, jwks, replay=store), audit=audit, feedback=store,
                         pages=PageCache(), store=store,
                         pool=WorkPool(settings.workers, settings.work_queue, settings.request_timeout_s),
                         api_pool=WorkPool(settings.api_workers, settings.work_queue, settings.request_timeout_s,
                                           name="leukos-api"),
                         page_pool=WorkPool(settings.page_workers, settings.work_queue, settings.request_timeout_s,
                                             name="leukos-pages"))
    if settings.auth_disabled:
        log.warning("!!! AUTHENTICATION IS DISABLED (LEUKOS_AUTH_DISABLED) — loopback development only; "
                    "every caller on %s is trusted !!!", settings.host)

    app = FastAPI(
        title="leukos",
        version=__version__,
        summary="Decision support for extreme leukocytosis: REST API, CDS Hooks 2.0 and web UI.",
        description="leukos supports clinical decisions; it does not replace clinical judgement. "
                    "It is not a medical device. Every output carries its working and references.",
        docs_url=None, redoc_url=None, openapi_url=None,  # served by leukos.service.docs, behind auth
        # FastAPI's own OpenTelemetry export stays off even when a global provider is configured: its
        # logs carry exception messages (which may quote input) and its spans the request paths (which
        # may hold a patient's pseudonym); leukos logs neither. Off, it is not looked up per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.leukos = state
    install_error_handlers(app)
    for spec in ROUTERS:
        module, _, attr = spec.partition(":")
        app.include_router(getattr(import_module(module), attr))
    from leukos.service import registry_api  # follow-up registry: /api/patients, /ui/patients (issue 13)

    registry_api.install(app)
    from leukos.service.cds.call_route import install_call_route  # the hot CDS route, lean (after the routers)

    install_call_route(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _patch_openapi(app)

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(ContainBugs)
    # Outermost last: the audit sees every call, including the ones refused for size.
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(AuditMiddleware, audit=state.audit)
    from leukos.service.page_errors import PageErrors

    app.add_middleware(PageErrors)  # outermost: a JSON error on a page address (413, 405, 500 ...) becomes a page
    return app


def _patch_openapi(app: FastAPI) -> None:
    """Add the component schemas that routes reading their own body declare (``OPENAPI_COMPONENTS``)."""
    from fastapi.openapi.utils import get_openapi

    from leukos.service.cds.routes import OPENAPI_COMPONENTS

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 description=app.description, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(OPENAPI_COMPONENTS())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
