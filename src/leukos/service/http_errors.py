"""One error shape for every surface, safe JSON out, and bounded JSON in.

Every error the service answers — REST, CDS Hooks, docs — is
``{"error": <kind>, "title": <sentence>, "details": [{"field", "value", "expected", "fix"}]}``:

====================================  ======  =====================================================
cause                                 status  error
====================================  ======  =====================================================
bad input (LeukosUserError, schema)   422     the user error's class, e.g. ``CaseFormatError``
authentication                        401     ``AuthenticationFailed``
route or CDS service unknown          404     ``NotFound`` (other HTTP errors: ``HttpError``)
required CDS prefetch unobtainable    412     ``PrefetchMissing``
body too large                        413     ``RequestTooLarge``
fhirServer failed (nothing to say)    502     ``FhirServerError``
core part missing from this build     503     ``EngineUnavailable``
busy / wall time exceeded             503     ``ServiceBusy`` (+ ``Retry-After``)
audit trail cannot be written         503     ``AuditUnavailable``
a bug                                 500     ``InternalError`` (traceback in the log, message not)
====================================  ======  =====================================================

Bodies are made JSON-safe before they are written: a NaN, an infinity or a lone surrogate echoed
from the input becomes text, so an error about a bad value can always be sent.
"""

from __future__ import annotations

import json
import logging
import math
import traceback
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from leukos.errors import CaseFormatError, ErrorDetail, LeukosUserError
from leukos.interop.limits import json_path, loads_json_bytes

__all__ = ["json_safe", "json_bytes", "JsonBytes", "error_response", "install_error_handlers", "parse_json_body",
           "validation_error", "ContainBugs"]

log = logging.getLogger("leukos.service")


def _text(s: str) -> str:
    if s.isascii():
        return s
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


def json_safe(value: Any, _depth: int = 0) -> Any:
    """``value`` with non-finite numbers and unencodable text turned into text; odd objects as repr."""
    if _depth > 32:
        return "…"
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else ("NaN" if math.isnan(value) else
                                                   ("Infinity" if value > 0 else "-Infinity"))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {_text(str(k)): json_safe(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, _depth + 1) for v in value]
    return _text(repr(value))


def json_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON; a NaN or lone surrogate here is a bug (input is checked) and raises."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


class JsonBytes(Response):
    """A response whose JSON was already rendered (in a worker thread)."""

    media_type = "application/json"


def error_response(status: int, error: str, title: str, details: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    body = json_safe({"error": error, "title": title, "details": details or []})
    return Response(json_bytes(body), status_code=status, media_type="application/json", headers=headers)


def user_error_response(exc: LeukosUserError) -> Response:
    return Response(json_bytes(json_safe(exc.to_dict())), status_code=422, media_type="application/json")


def validation_error(errors: list[dict[str, Any]], *, prefix: str = "body") -> LeukosUserError:
    """Pydantic errors as one user error (field, value, expected, fix for each)."""
    details = []
    for e in errors:
        loc = [p for p in e.get("loc", ()) if p not in ("body",)]
        field = json_path([prefix, *loc]) if prefix else json_path(loc)
        value = e.get("input")
        if isinstance(value, (dict, list)):
            value = f"({type(value).__name__})"
        details.append(ErrorDetail(field=field or prefix, value=json_safe(value), expected=str(e.get("msg")),
                                   fix="correct this field (see the OpenAPI schema at /docs)"))
    return LeukosUserError(details, title="The request does not match the schema")


def parse_json_body(raw: bytes, model: type[BaseModel], *, name: str = "body") -> BaseModel:
    """Decode, parse within the limits of :mod:`leukos.interop.limits`, and validate ``raw`` as ``model``."""
    if not raw.strip():
        raise CaseFormatError(ErrorDetail(name, "(empty)", "a JSON object", "send the request as JSON"))
    data = loads_json_bytes(raw, name=name)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False), prefix=name) from None


_FASTAPI_BODY_ERROR = "There was an error parsing the body"  # fastapi.routing: a JSON body its parser refused
_UNREADABLE_BODY = "The request body cannot be read"


async def _unparsable_body(request: Request) -> Response:
    """A JSON body FastAPI could not parse for a route that declares one (the registry's), answered as
    every other route answers it: 422 naming where and why (a syntax error's line and column, nesting
    beyond the bound, NaN ...), not 400 "There was an error parsing the body" with nothing to act on.
    The body is parsed again by the project's bounded parser, in the REST API's pool."""
    try:
        raw = await request.body()
    except Exception:  # noqa: BLE001 - the body can no longer be read: say what is known
        raw = None
    if raw is not None:
        st = getattr(request.app.state, "leukos", None)
        pool = getattr(st, "api_pool", None)
        parse = partial(loads_json_bytes, raw, name="body")
        try:
            await pool.run(parse) if pool is not None else parse()
        except LeukosUserError as exc:
            return user_error_response(CaseFormatError(list(exc.details), title=_UNREADABLE_BODY))
    return user_error_response(CaseFormatError(ErrorDetail("body", None, "a JSON document",
                                                            "send the request body as valid JSON"),
                                               title=_UNREADABLE_BODY))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers of the table above. Other modules add theirs with ``app.exception_handler``."""
    from leukos.service.cds.prefetch import FhirServerError, PrefetchMissing
    from leukos.service.engines import EngineUnavailable
    from leukos.service.security import AuthError
    from leukos.service.workers import ServiceBusy

    @app.exception_handler(LeukosUserError)
    async def _user_error(request: Request, exc: LeukosUserError) -> Response:
        return user_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return user_error_response(validation_error(list(exc.errors()), prefix=""))

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> Response:
        return error_response(exc.status, "AuthenticationFailed", exc.reason,
                              headers={"WWW-Authenticate": 'Bearer realm="leukos"'})

    @app.exception_handler(PrefetchMissing)
    async def _prefetch_missing(request: Request, exc: PrefetchMissing) -> Response:
        return error_response(412, "PrefetchMissing", str(exc), [
            {"field": f"prefetch.{k}", "value": None, "expected": "the prefetch declared in discovery",
             "fix": exc.fix} for k in exc.keys])

    @app.exception_handler(FhirServerError)
    async def _fhir_error(request: Request, exc: FhirServerError) -> Response:
        return error_response(502, "FhirServerError", str(exc))

    @app.exception_handler(EngineUnavailable)
    async def _unavailable(request: Request, exc: EngineUnavailable) -> Response:
        return error_response(503, "EngineUnavailable", str(exc))

    @app.exception_handler(ServiceBusy)
    async def _busy(request: Request, exc: ServiceBusy) -> Response:
        return error_response(503, "ServiceBusy", exc.reason, [
            {"field": "(request)", "value": None, "expected": "a call the service can finish now",
             "fix": f"retry after {exc.retry_after_s} s"}], headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:
            return await _unparsable_body(request)
        kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HttpError")
        return error_response(exc.status_code, kind, str(exc.detail), headers=getattr(exc, "headers", None))


class ContainBugs:
    """ASGI middleware: an unhandled exception becomes a 500 in the common shape, and the log gets the
    traceback frames but not the exception's message, which may quote input (a birth date, an id)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(msg: Any) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the last line of defence; re-raised only if sending began
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("internal error %s on %s %s\n%s", type(exc).__name__, scope.get("method"), scope.get("path"),
                      frames)
            if started:
                raise RuntimeError("response already started when an internal error occurred") from None
            resp = error_response(500, "InternalError", "leukos failed on this request (a bug; it has been logged)")
            await resp(scope, receive, send)
