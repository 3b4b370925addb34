"""FastAPI dependencies: the service state and who is calling."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from leukos.service.security import AuthError, Caller, check_api_token

__all__ = ["service_state", "api_caller", "cds_caller", "cds_credentials", "verify_credentials"]


def service_state(request: Request):
    return request.app.state.leukos


def _bearer(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("an Authorization: Bearer token is required")
    return token.strip()


def _remember(request: Request, caller: Caller) -> Caller:
    request.state.caller = caller
    return caller


async def _jwt(request: Request, token: str) -> Caller:
    """Verify a client JWT in the worker pool (signature checks are CPU work)."""
    st = service_state(request)
    audience = st.settings.endpoint_url(str(request.base_url), request.url.path)
    if st.pool is None:
        return st.verifier.verify(token, audience)
    return await st.pool.run(st.verifier.verify, token, audience)


async def api_caller(request: Request) -> Caller:
    """REST API and UI: the static API token, or a CDS-style client JWT (aud = this URL).

    ``async`` so that FastAPI does not hop to its thread pool for every call; only a JWT check
    goes to the worker pool.
    """
    st = service_state(request)
    if st.settings.auth_disabled:
        return _remember(request, Caller(kind="anonymous-dev"))
    token = _bearer(request)
    if check_api_token(st.settings, token):
        return _remember(request, Caller(kind="api-token"))
    return _remember(request, await _jwt(request, token))


async def cds_caller(request: Request) -> Caller:
    """CDS Hooks endpoints (discovery included): a CDS client JWT only."""
    st = service_state(request)
    if st.settings.auth_disabled:
        return _remember(request, Caller(kind="anonymous-dev"))
    return _remember(request, await _jwt(request, _bearer(request)))


def cds_credentials(request: Request) -> tuple[str, str] | None:
    """The hot CDS route's half of :func:`cds_caller` on the event loop: the bearer token and the
    audience its JWT must name, for :func:`verify_credentials` to check in the worker pool within the
    call's own job (one hop off the loop instead of two: about 0.2 ms of CPU a call). A call without a
    bearer token is refused here, before its body is read. ``None`` when authentication is off (the
    caller is then recorded as :func:`cds_caller` records it)."""
    st = service_state(request)
    if st.settings.auth_disabled:
        _remember(request, Caller(kind="anonymous-dev"))
        return None
    return _bearer(request), st.settings.endpoint_url(str(request.base_url), request.url.path)


def verify_credentials(st: Any, credentials: tuple[str, str] | None, request_state: Any) -> None:
    """In the worker pool, before anything reads the body: verify the JWT of ``credentials`` (raises
    :class:`AuthError`, answered 401 as :func:`cds_caller`'s is) and record the caller for the audit."""
    if credentials is not None:
        request_state.caller = st.verifier.verify(*credentials)

