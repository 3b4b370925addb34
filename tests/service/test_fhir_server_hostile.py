"""A hostile or broken fhirServer (issue 11: never a hang, a 500 or a silently empty answer).

When the prefetch lacks a key, leukos reads it from the EHR's fhirServer. These tests stand up a
real loopback HTTP server (threaded ``http.server``) that misbehaves the way a broken or hostile
server can, and check what :func:`leukos.service.cds.prefetch.gather` and the CDS route make of it:

- a gzip bomb (50 MB of zeros in ~50 kB) is refused at 5 MB, never unpacked whole (it was unpacked
  in full before the size check: 2 GB of memory for a 1 GB bomb);
- an answer dripped a byte at a time, and a server that never answers, cost one deadline for all
  reads together (they ran one after another, each with its own timeout: a drip never ended);
- ``entry: 5`` is a 412 naming the reason (a 500 TypeError), and an OperationOutcome, ``null``, ``[]``
  or ``"x"`` answered for the laboratory results is a 412 (it was 200 with no cards and no note);
- a bearer token that cannot be put in a header (a non-ASCII character) is said, not a 500.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from leukos.knowledge import load_knowledge
from leukos.service.cds.models import CdsRequest
from leukos.service.cds.prefetch import PrefetchMissing, gather
from tests.service.conftest import needs_engine, needs_fhir
from tests.service.fhir_data import patient_view_request

from .test_reliability import PV, _dev

KB = load_knowledge()
BOMB = gzip.compress(b"\0" * (50 * 1024 * 1024), compresslevel=9)


@contextmanager
def _server(answer):
    """A loopback server whose every GET is answered by ``answer(handler)``."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            try:
                answer(self)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/fhir"
    finally:
        server.shutdown()
        server.server_close()


def _send(handler, body: bytes, *, status: int = 200, **headers: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/fhir+json")
    handler.send_header("Content-Length", str(len(body)))
    for k, v in headers.items():
        handler.send_header(k.replace("_", "-"), v)
    handler.end_headers()
    handler.wfile.write(body)


def _request(base: str, *, drop=("labs",), token: str = "EHR-TOKEN") -> CdsRequest:
    req = patient_view_request("01-aml-leukostasis.yaml")
    for k in drop:
        del req["prefetch"][k]
    req["fhirServer"] = base
    req["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 60,
                                "scope": "patient/*.read", "subject": "leukos"}
    return CdsRequest.model_validate(req)


def _gather(base: str, timeout_s: float = 2.0, **kw) -> tuple[dict, list[str]]:
    notes: list[str] = []
    have = asyncio.run(gather(_request(base, **kw), KB, timeout_s=timeout_s, allowlist=(base,), notes=notes))
    return have, notes


def test_a_gzip_bomb_is_refused_at_the_limit_not_unpacked():
    with _server(lambda h: _send(h, BOMB, Content_Encoding="gzip")) as base:
        with pytest.raises(PrefetchMissing, match=r"too large \(unpacked\)"):  # stopped while unpacking
            _gather(base)


def test_an_answer_dripped_byte_by_byte_costs_one_deadline():
    def drip(h):
        h.send_response(200)
        h.send_header("Content-Type", "application/fhir+json")
        h.end_headers()
        for _ in range(200):  # 40 s at this pace if nobody stopped reading
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(0.2)

    with _server(drip) as base:
        t0 = time.monotonic()
        with pytest.raises(PrefetchMissing, match="did not answer within 1 s"):
            _gather(base, timeout_s=1.0)
        assert time.monotonic() - t0 < 5


def test_a_silent_server_costs_one_deadline_for_all_reads_together():
    with _server(lambda h: time.sleep(30)) as base:
        t0 = time.monotonic()
        with pytest.raises(PrefetchMissing):
            _gather(base, timeout_s=1.0, drop=("labs", "conditions", "meds", "patient"))
        assert time.monotonic() - t0 < 3  # four reads at once: one deadline, not four


@pytest.mark.parametrize("body, says", [
    (b'{"resourceType": "Bundle", "type": "searchset", "entry": 5}', "a Bundle whose entry is not a list"),
    (b'{"resourceType": "Bundle", "type": "searchset", "entry": [5, null]}', "an entry that is not a resource"),
    (b'{"resourceType": "OperationOutcome", "issue": []}', "an OperationOutcome"),
    (b"null", "not a FHIR resource or Bundle"),
    (b"[]", "not a FHIR resource or Bundle"),
    (b'"x"', "not a FHIR resource or Bundle"),
])
def test_laboratory_results_that_are_not_a_bundle_of_resources_are_a_412_with_the_reason(body, says):
    with _server(lambda h: _send(h, body)) as base:
        with pytest.raises(PrefetchMissing, match=says):
            _gather(base)


def test_an_optional_key_answered_unusably_is_a_note_not_silence():
    with _server(lambda h: _send(h, b'{"resourceType": "OperationOutcome", "issue": []}')) as base:
        have, notes = _gather(base, drop=("conditions",))
    assert "conditions" not in have and any("conditions" in n and "OperationOutcome" in n for n in notes)


def test_a_token_that_cannot_be_a_header_is_said_and_nothing_is_sent():
    seen = []
    with _server(lambda h: seen.append(h.path)) as base:
        with pytest.raises(PrefetchMissing, match="not a bearer token"):
            _gather(base, token="tokén")
    assert seen == []


@needs_engine()
@needs_fhir()
def test_entry_5_in_the_prefetch_itself_is_a_422_naming_it(tmp_path):
    """The same shape sent as prefetch was a 500 (TypeError iterating it)."""
    req = patient_view_request("01-aml-leukostasis.yaml")
    req["prefetch"]["conditions"] = {"resourceType": "Bundle", "type": "searchset", "entry": 5}
    r = _dev(tmp_path).post(PV, json=req)
    assert r.status_code == 422, r.text[:300]
    assert r.json()["details"][0]["field"] == "prefetch.conditions.entry"


@needs_engine()
@needs_fhir()
def test_the_route_answers_412_with_the_reason_for_an_operation_outcome(tmp_path):
    with _server(lambda h: _send(h, json.dumps({"resourceType": "OperationOutcome", "issue": []}).encode())) as base:
        c = _dev(tmp_path, fhir_server_allowlist=(base,))
        req = patient_view_request("01-aml-leukostasis.yaml")
        del req["prefetch"]["labs"]
        req["fhirServer"] = base
        r = c.post(PV, json=req)
    assert r.status_code == 412 and "OperationOutcome" in r.json()["title"]
