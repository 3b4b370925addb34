"""The lean hot route (``leukos.service.cds.call_route``) answers exactly as FastAPI's declared route.

Each request below is sent to two apps built from the same settings: the service as built, and the
same service with the lean route taken out (FastAPI routes the call, as before the lean route
existed). Status, headers and body must be identical, and so must the audit events written (their
id and time aside): successes, every kind of refusal, the methods and paths it must not take.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from leukos.service.app import create_app
from leukos.service.cds.call_route import CallRoute
from leukos.service.settings import ServiceSettings

from .conftest import EXAMPLES, ISSUER, Client, mint, needs_engine, needs_fhir
from .fhir_data import order_select_request, patient_view_request

PV = "/cds-services/leukos-patient-view"
OS = "/cds-services/leukos-order-select"
PAGE_TOKEN = re.compile(r"/ui/cds/[A-Za-z0-9_\-]+")  # a fresh random token per call: not compared
NOW = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")  # the feedback receipt's time


def _pair(tmp_path, **settings):
    """(built app, the same app without the lean route), each with its own audit file (same pseudonym key)."""
    jwks = settings.pop("jwks", None)
    apps = []
    for name in ("lean", "fastapi"):
        apps.append(create_app(ServiceSettings(examples_dir=EXAMPLES, audit_log_path=tmp_path / name / "audit.jsonl",
                                               audit_key="ab" * 32, max_body_bytes=64 * 1024, **settings), jwks=jwks))
    lean, plain = apps
    assert isinstance(lean.router.routes[0], CallRoute)
    plain.router.routes[:] = [r for r in plain.router.routes if not isinstance(r, CallRoute)]
    return lean, plain


def _seen(app, resp):
    body = NOW.sub("(now)", PAGE_TOKEN.sub("/ui/cds/(token)", resp.text))
    headers = {k: PAGE_TOKEN.sub("", v) for k, v in resp.headers.items() if k != "content-length"}
    events = [{k: v for k, v in row["event"].items() if k not in ("id", "recorded")}
              for row in app.state.leukos.audit.records]
    return resp.status_code, headers, body, events[-1:]


def _same(pair, method, url, **kw):
    lean, plain = pair
    got = _seen(lean, Client(lean).request(method, url, **kw))
    want = _seen(plain, Client(plain).request(method, url, **kw))
    assert got == want
    return got


def _body(**over):
    base = {"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p1"}, "prefetch": {}}
    return {**base, **over}


REFUSALS = [
    ("POST", PV, {"content": b"{", "headers": {"content-type": "application/json"}}, 422),
    ("POST", PV, {"content": b"", "headers": {"content-type": "application/json"}}, 422),
    ("POST", PV, {"content": b'{"hook": NaN}', "headers": {"content-type": "application/json"}}, 422),
    ("POST", PV, {"json": {"hook": "patient-view"}}, 422),
    ("POST", PV, {"json": _body(hook="order-sign")}, 422),
    ("POST", PV, {"json": _body(context={})}, 422),
    ("POST", PV, {"json": _body(prefetch={"patient": None})}, 412),
    ("POST", PV, {"content": b"[" * 70_000, "headers": {"content-type": "application/json"}}, 413),
    ("POST", "/cds-services/nope", {"json": _body()}, 404),
    ("GET", PV, {}, 405),
    ("PUT", PV, {"json": _body()}, 405),
    ("DELETE", PV, {}, 405),
    ("POST", PV + "/", {"json": _body()}, 307),
    ("POST", "/cds-services/", {"json": _body()}, None),
    ("POST", PV + "/feedback", {"json": {"feedback": []}}, 200),
    ("GET", "/cds-services", {}, 200),
    ("GET", "/docs", {}, 200),  # builds URLs with url_for: the lean route must not break it
]


@pytest.mark.parametrize(("method", "url", "kw", "status"), REFUSALS, ids=[f"{m} {u} {s}" for m, u, _, s in REFUSALS])
def test_same_answer_as_fastapi_route_without_auth(tmp_path, method, url, kw, status):
    got = _same(_pair(tmp_path, auth_disabled=True), method, url, **kw)
    if status is not None:
        assert got[0] == status


@needs_engine()
@needs_fhir()
@pytest.mark.parametrize("example", ["01-aml-leukostasis.yaml", "02-apl-coagulopathy.yaml", "07-normal-count.yaml"])
def test_same_cards_and_audit_as_fastapi_route(tmp_path, example):
    pair = _pair(tmp_path, auth_disabled=True)
    status, _, body, events = _same(pair, "POST", PV, json=patient_view_request(example))
    assert status == 200 and isinstance(json.loads(body)["cards"], list)
    assert events[0]["entity"], "the audit event names the patient, the hook instance and the cards"
    status, *_ = _same(pair, "POST", OS, json=order_select_request(example, "rbc"))
    assert status == 200


def test_same_authentication_as_fastapi_route(tmp_path, client_key, jwks):
    base = "http://testserver"
    pair = _pair(tmp_path, trusted_issuers=(ISSUER,), public_base_url=base, data_dir=tmp_path / "data",
                 jwks=jwks)
    assert _same(pair, "POST", PV, json=_body())[0] == 401  # no token
    assert _same(pair, "POST", "/cds-services/nope", json=_body())[0] == 401  # authentication before the 404
    bad_aud = {"Authorization": f"Bearer {mint(client_key, aud=base + '/cds-services/other')}"}
    assert _same(pair, "POST", PV, json=_body(), headers=bad_aud)[0] == 401
    lean, plain = pair
    for app in pair:  # a fresh token per app (a jti is accepted once)
        token = mint(client_key, aud=base + PV, jti=str(uuid.uuid4()))
        r = Client(app).post(PV, json=_body(hook="order-sign"), headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 422, "authenticated, then refused for the wrong hook"
        assert app.state.leukos.audit.records[-1]["event"]["agent"][0]["who"]["display"] == ISSUER


def test_same_cors_headers_as_fastapi_route(tmp_path):
    pair = _pair(tmp_path, auth_disabled=True, cors_origins=("https://ehr.example.org",))
    origin = {"Origin": "https://ehr.example.org"}
    status, headers, *_ = _same(pair, "POST", PV, json=_body(hook="order-sign"), headers=origin)
    assert status == 422 and headers["access-control-allow-origin"] == "https://ehr.example.org"
    preflight = {**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    assert _same(pair, "OPTIONS", PV, headers=preflight)[0] == 200


def _asgi_post(app, chunks, *, disconnect=False):
    """POST the body to the patient-view route as the server would, in ``chunks`` (``more_body``
    on all but the last), or stopping with ``http.disconnect`` after them; (status, body, raised)."""
    import asyncio

    messages = [{"type": "http.request", "body": c, "more_body": disconnect or i < len(chunks) - 1}
                for i, c in enumerate(chunks)]
    if disconnect:
        messages.append({"type": "http.disconnect"})
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": PV, "raw_path": PV.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
    raised = None
    try:
        asyncio.run(app(scope, receive, send))
    except Exception as exc:  # noqa: BLE001 - what the server would see
        raised = type(exc).__name__
    status = next((m["status"] for m in sent if m["type"] == "http.response.start"), None)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, PAGE_TOKEN.sub("/ui/cds/(token)", body.decode()), raised


@needs_engine()
@needs_fhir()
def test_a_body_in_several_messages_or_cut_off_is_read_as_before(tmp_path):
    """The hot route reads its body itself: in pieces it is the same call as in one message (empty
    pieces included), on either route; a client that goes away mid-body is answered as before."""
    pair = _pair(tmp_path, auth_disabled=True)
    raw = json.dumps(patient_view_request("01-aml-leukostasis.yaml")).encode()
    whole = _asgi_post(pair[0], [raw])
    assert whole[0] == 200 and whole[2] is None
    pieces = [raw[:7], b"", raw[7:5000], raw[5000:]]
    for app in pair:
        assert _asgi_post(app, pieces) == whole
    cut = [_asgi_post(app, [raw[:5000]], disconnect=True) for app in pair]
    assert cut[0] == cut[1] and cut[0][0] != 200


def test_an_authenticated_call_is_verified_then_answered_in_one_pool_job(tmp_path, client_key, jwks):
    """The JWT of a call to a known service is verified in the pool job that then parses and answers the
    call: one hop off the event loop, not two; verified before the body is parsed, so a bad token with
    a malformed body is 401, never 422; without a bearer token the call never reaches the pool."""
    base = "http://testserver"
    (app, _) = _pair(tmp_path, trusted_issuers=(ISSUER,), public_base_url=base, data_dir=tmp_path / "data", jwks=jwks)
    pool = app.state.leukos.pool
    jobs = []
    run = pool.run

    async def counted(fn, *args):
        jobs.append(fn.__name__)
        return await run(fn, *args)

    pool.run = counted
    client = Client(app)
    token = mint(client_key, aud=base + PV, jti=str(uuid.uuid4()))
    r = client.post(PV, json=_body(hook="order-sign"), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422 and jobs == ["_parse_and_run"]
    assert app.state.leukos.audit.records[-1]["event"]["agent"][0]["who"]["display"] == ISSUER
    bad = mint(client_key, aud=base + "/cds-services/other", jti=str(uuid.uuid4()))
    r = client.post(PV, content=b"{", headers={"Authorization": f"Bearer {bad}", "content-type": "application/json"})
    assert r.status_code == 401 and jobs == ["_parse_and_run"] * 2
    r = client.post(PV, content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 401 and len(jobs) == 2
