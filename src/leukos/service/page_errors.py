"""Errors on the pages clinicians open are pages, never the API's JSON.

The web form, the report and the registry pages answer their own errors as pages. Some errors are
answered before or around them, in the API's JSON shape (:mod:`leukos.service.http_errors`): a body
over the size limit (413), a form the framework cannot read (400: too many fields, a broken
multipart body), a method the address does not take (405), an address with no page (404), a busy
service (503), a bug (500). On a page address, :class:`PageErrors` turns such a JSON error into a
page of the site with the same status, saying in words what happened and what to do; the API and CDS
addresses keep their JSON. Only error responses are looked at: a page that answers is passed through
untouched.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["PageErrors", "is_page"]

_PAGE_PREFIXES = ("/ui/", "/ui?")
_PAGES = frozenset({"/", "/about", "/ui"})

# What a clinician reads for each kind of error answered around the pages (the API's kinds, in words).
_SAID = {
    "RequestTooLarge": ("The form is too large to be read",
                        "Shorten what was pasted: one patient's case is a few kilobytes."),
    "MethodNotAllowed": ("This address is not a page",
                         "Open the assessment form from the home page and submit it from there."),
    "NotFound": ("There is no page at this address", "Go back to the home page."),
    "ServiceBusy": ("leukos is busy", "Wait a few seconds and submit again."),
    "InternalError": ("leukos failed on this request",
                      "This is a fault in leukos and it has been logged. Try again; if it happens again, "
                      "tell the team that runs leukos."),
    "EngineUnavailable": ("This part of leukos is not installed here", "Tell the team that runs leukos."),
    "HttpError": ("The form could not be read", "Reload the page and submit the form again."),
}


def is_page(path: str) -> bool:
    return path in _PAGES or path.startswith(_PAGE_PREFIXES)


def _size(expected: str) -> str:
    """'at most 1048576 bytes' -> 'at most 1 MB' (as people write sizes)."""
    digits = "".join(c for c in expected if c.isdigit())
    if not digits:
        return expected
    n = int(digits)
    return f"at most {n / 1048576:g} MB" if n >= 1048576 else f"at most {n / 1024:g} kB"


_BY_STATUS = {404: "NotFound", 405: "MethodNotAllowed", 413: "RequestTooLarge", 500: "InternalError",
              503: "ServiceBusy"}


def _words(error: dict[str, Any], status: int) -> tuple[str, list[str]]:
    """(title, lines) of a JSON error body for a page: the kind's words, then the error's own reason
    (the framework's title, e.g. 'Too many fields. Maximum number of fields is 1000.'), never JSON."""
    kind = str(error.get("error") or _BY_STATUS.get(status, "HttpError"))
    title, todo = _SAID.get(kind, _SAID["HttpError"])
    lines = []
    reason = str(error.get("title") or "").strip()
    if reason and kind not in ("InternalError", "NotFound", "MethodNotAllowed"):
        lines.append(reason if reason.endswith(".") else reason + ".")
    for d in error.get("details") or []:
        expected = d.get("expected") if isinstance(d, dict) else None
        if kind == "RequestTooLarge" and isinstance(expected, str):
            lines.append(f"A form can carry {_size(expected)}.")
        elif kind == "ServiceBusy" and isinstance(d, dict) and d.get("fix"):
            todo = f"Wait and submit again ({d['fix']})."
    lines.append(todo)
    return title, lines


class PageErrors:
    """ASGI middleware: on a page address, a JSON error response becomes an HTML page (same status)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not is_page(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] | None = None  # the start of a JSON error, while its body is collected
        body = bytearray()

        async def pages_send(msg: Any) -> None:
            nonlocal held
            if msg["type"] == "http.response.start":
                headers = dict(msg.get("headers") or ())
                if msg["status"] >= 400 and headers.get(b"content-type", b"").startswith(b"application/json"):
                    held = msg
                    return
                await send(msg)
                return
            if held is None or msg["type"] != "http.response.body":
                await send(msg)
                return
            body.extend(msg.get("body", b""))
            if not msg.get("more_body", False):
                await self._page(scope, held, bytes(body), send)

        await self.app(scope, receive, pages_send)

    async def _page(self, scope: Any, start: dict[str, Any], raw: bytes, send: Any) -> None:
        from starlette.requests import Request

        from leukos.service.ui import error_page

        try:
            error = json.loads(raw)
        except ValueError:
            error = {}
        title, lines = _words(error if isinstance(error, dict) else {}, start["status"])
        keep = [(k, v) for k, v in start.get("headers") or () if k.lower() in (b"retry-after", b"allow") and v]
        response = error_page(Request(scope), title, lines, status=start["status"])
        response.raw_headers.extend(keep)
        await response(scope, _no_body, send)


async def _no_body() -> dict[str, Any]:
    return {"type": "http.disconnect"}
