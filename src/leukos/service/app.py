"""The leukos ASGI app: REST API, CDS Hooks 2.0 services and the clinician web UI in one FastAPI app.

Build it with :func:`create_app` and a :class:`~leukos.service.settings.ServiceSettings`; nothing is
read from the environment or the disk at import time.

Errors: a :class:`~leukos.errors.LeukosUserError` (bad input) → 422 with its details (field, value,
expected, fix); bad JSON shape of a wire model → 422 in the same shape; missing CDS prefetch →
412; authentication → 401; a part of the core not in this build → 503. Anything else is a bug and
stays a 500 with its traceback in the server log.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leukos import __version__
from leukos.errors import ErrorDetail, LeukosUserError
from leukos.knowledge import KnowledgeBase, load_knowledge
from leukos.service.audit import AuditLog, AuditRecord
from leukos.service.cds.prefetch import FhirServerError, PrefetchMissing
from leukos.service.engines import Engines, EngineUnavailable, default_engines
from leukos.service.security import AuthError, JwtVerifier
from leukos.service.settings import ServiceSettings

__all__ = ["create_app", "ServiceState", "STATIC_DIR"]

log = logging.getLogger("leukos.service")
STATIC_DIR = Path(__file__).parent / "static"


@dataclass
class ServiceState:
    """Everything a request handler needs, held on ``app.state.leukos``."""

    settings: ServiceSettings
    kb: KnowledgeBase
    engines: Engines
    verifier: JwtVerifier
    audit: AuditLog
    feedback: Any = None  # leukos.service.cds.routes.FeedbackStore
    pages: Any = None  # leukos.service.ui.PageCache: assessments behind CDS card links


def _error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers)


def _json_safe(value: Any) -> Any:
    """A request fragment as JSON can carry it (bytes decoded, anything odd as its repr)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


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
        resp = _error(413, {"error": "RequestTooLarge", "title": "The request body is too large",
                            "details": [{"field": "body", "value": None,
                                         "expected": f"at most {self.limit} bytes",
                                         "fix": "send one case or one CDS request per call"}]})
        await resp({"type": "http"}, None, send)  # type: ignore[arg-type]


class AuditMiddleware:
    """Write one AuditEvent per HTTP call (static assets excepted), after the response is sent."""

    def __init__(self, app: ASGIApp, audit: AuditLog):
        self.app, self.audit = app, audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        status = 500
        state = scope.setdefault("state", {})

        async def capture(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, capture)
        finally:
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


def create_app(settings: ServiceSettings, *, kb: KnowledgeBase | None = None, engines: Engines | None = None,
               jwks: dict[str, Any] | None = None) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings
        Typed settings (:meth:`ServiceSettings.from_env`).
    kb, engines, jwks
        Injected knowledge base, core functions and trusted-client JWKS (defaults: the bundled
        knowledge, the core's functions present in this build, ``settings.jwks_path``).
    """
    from leukos.service import api, cds, ui

    kb = kb or load_knowledge()
    engines = engines or default_engines()
    state = ServiceState(settings=settings, kb=kb, engines=engines, verifier=JwtVerifier(settings, jwks),
                         audit=AuditLog(settings.audit_log_path), feedback=cds.routes.FeedbackStore(),
                         pages=ui.PageCache())
    if settings.auth_disabled:
        log.warning("!!! AUTHENTICATION IS DISABLED (LEUKOS_AUTH_DISABLED) — loopback development only; "
                    "every caller on %s is trusted !!!", settings.host)

    app = FastAPI(
        title="leukos",
        version=__version__,
        summary="Decision support for extreme leukocytosis: REST API, CDS Hooks 2.0 and web UI.",
        description="leukos supports clinical decisions; it does not replace clinical judgement. "
                    "It is not a medical device. Every output carries its working and references.",
    )
    app.state.leukos = state

    @app.exception_handler(LeukosUserError)
    async def _user_error(request: Request, exc: LeukosUserError) -> JSONResponse:
        return _error(422, exc.to_dict())

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [ErrorDetail(field=".".join(str(p) for p in e.get("loc", ())), value=_json_safe(e.get("input")),
                               expected=str(e.get("msg")), fix="correct this field (see the OpenAPI schema at /docs)")
                   for e in exc.errors()]
        return _error(422, LeukosUserError(details, title="The request does not match the schema").to_dict())

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> JSONResponse:
        return _error(exc.status, {"error": "AuthenticationFailed", "title": exc.reason, "details": []},
                      {"WWW-Authenticate": 'Bearer realm="leukos"'})

    @app.exception_handler(PrefetchMissing)
    async def _prefetch_missing(request: Request, exc: PrefetchMissing) -> JSONResponse:
        return _error(412, {"error": "PrefetchMissing", "title": str(exc), "details": [
            {"field": f"prefetch.{k}", "value": None, "expected": "the prefetch declared in discovery",
             "fix": "send the prefetch, or fhirServer (+ fhirAuthorization) so leukos can read it"} for k in exc.keys]})

    @app.exception_handler(FhirServerError)
    async def _fhir_error(request: Request, exc: FhirServerError) -> JSONResponse:
        return _error(502, {"error": "FhirServerError", "title": str(exc), "details": []})

    @app.exception_handler(EngineUnavailable)
    async def _unavailable(request: Request, exc: EngineUnavailable) -> JSONResponse:
        return _error(503, {"error": "EngineUnavailable", "title": str(exc), "details": []})

    app.include_router(api.router)
    app.include_router(cds.router)
    app.include_router(ui.router)
    from leukos.service import registry_api  # follow-up registry: /api/patients, /ui/patients (issue 13)

    registry_api.install(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type"])
    # Outermost last: the audit sees every call, including the ones refused for size.
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(AuditMiddleware, audit=state.audit)
    return app
