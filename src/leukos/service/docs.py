"""API documentation: ``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc).

Served from assets vendored in ``static/vendor`` (provenance in ``static/vendor/docs-vendor.json``),
never from a CDN. Outside development mode they need the same bearer token as the REST API; the
OpenAPI document is embedded in the page, so the browser makes no second authenticated request.
"""

from __future__ import annotations

import html
import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse

from leukos.service.deps import api_caller

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

SWAGGER = "vendor/swagger-ui-5.35.0"
REDOC = "vendor/redoc-2.5.2"


def _embedded(request: Request) -> str:
    # "</" cannot end the script element early once escaped; the JSON stays valid.
    return json.dumps(request.app.openapi(), ensure_ascii=True).replace("</", "<\\/")


def _page(request: Request, kind: str, head: str, script: str) -> HTMLResponse:
    static = request.url_for("static", path="").path.rstrip("/")
    title = html.escape(f"{request.app.title} {request.app.version} API")
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>{head.format(static=static)}</head>
<body><div id="api-docs" data-kind="{kind}"></div>
<script id="openapi-spec" type="application/json">{_embedded(request)}</script>
<script src="{static}/{script}"></script><script src="{static}/api-docs.js"></script></body></html>"""
    return HTMLResponse(body, headers={"Cache-Control": "no-store",
                                       "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                       "style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; "
                                       "connect-src 'self'; frame-ancestors 'none'"})


@router.get("/openapi.json")
async def openapi(request: Request, _caller=Depends(api_caller)) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger_ui(request: Request, _caller=Depends(api_caller)) -> HTMLResponse:
    return _page(request, "swagger", f'<link rel="stylesheet" href="{{static}}/{SWAGGER}/swagger-ui.css">',
                 f"{SWAGGER}/swagger-ui-bundle.js")


@router.get("/redoc")
async def redoc(request: Request, _caller=Depends(api_caller)) -> HTMLResponse:
    return _page(request, "redoc", "", f"{REDOC}/redoc.standalone.js")
