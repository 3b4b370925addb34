"""The hot route, ``POST /cds-services/{service_id}``, without FastAPI's per-request machinery.

For this route FastAPI's routing (matching through the nested routers of every included module),
its request handler and its dependency solving cost about as much CPU as the bare floor app's whole
call, and about half again when the call's own work has just evicted them from the CPU caches.
:class:`CallRoute` goes before every other route and hands such a call straight to
:func:`~leukos.service.cds.routes.call_service`, the one definition of what the route does.

What stays the same: the path pattern is the declared route's (Starlette's ``compile_path``); any
other method or path matches nothing here and goes to FastAPI as before (405 ``Allow``, 404);
errors are raised as before and answered by the app's exception handlers (Starlette's exception
middleware sits outside the router); the middleware (audit, body limit, bug containment, CORS)
wraps the router, so it sees the call as before; the response is the one ``call_service`` returns
(a ready :class:`~leukos.service.http_errors.JsonBytes`, which FastAPI sent unchanged). The declared
route stays in the app for the OpenAPI document and for the 405 handlers.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send

from leukos.service.cds.routes import call_service

__all__ = ["CallRoute", "install_call_route"]

PATH = "/cds-services/{service_id}"


class CallRoute(BaseRoute):
    """Matches ``POST`` on :data:`PATH` only (as the declared route would) and runs ``call_service``."""

    def __init__(self) -> None:
        self._route = Route(PATH, call_service, methods=["POST"])  # its matching only: never handles

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "POST":
            return Match.NONE, {}
        return self._route.matches(scope)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)  # URLs are built from the declared route

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await call_service(scope["path_params"]["service_id"], Request(scope, receive, send))
        await response(scope, receive, send)


def install_call_route(app: Any) -> None:
    """Put :class:`CallRoute` before every route of ``app`` (a FastAPI app with the CDS router included)."""
    app.router.routes.insert(0, CallRoute())
