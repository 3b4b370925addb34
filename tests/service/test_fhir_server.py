"""The fhirServer path against a real FHIR R4 server (Medplum FhirRouter + MemoryRepository, Node,
127.0.0.1): when the prefetch is missing, leukos reads it from ``fhirServer`` with the
``fhirAuthorization`` bearer token (CDS Hooks 2.0 §"FHIR Resource Access")."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from leukos.knowledge import load_knowledge
from leukos.service.app import create_app
from leukos.service.cds.models import CdsRequest
from leukos.service.cds.prefetch import PrefetchMissing, gather
from leukos.service.settings import ServiceSettings

from .conftest import EXAMPLES, Client, needs_engine, needs_fhir
from .fhir_data import PATIENT_ID, patient_view_request, resources_for

SERVER_DIR = Path(__file__).resolve().parents[1] / "fhir_server"
TOKEN = "test-fhir-access-token-7f3a"


@pytest.fixture(scope="module")
def fhir_base():
    node = shutil.which("node")
    if node is None or not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        pytest.fail("the test FHIR server is not installed: run scripts/system-deps/node-fhir.sh (make install does)")
    proc = subprocess.Popen([node, "server.cjs", "0"], cwd=SERVER_DIR, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "FHIR_TEST_TOKEN": TOKEN})
    try:
        line = proc.stdout.readline()
        assert line.startswith("LISTENING"), line
        base = f"http://127.0.0.1:{int(line.split()[1])}/fhir"
        res = resources_for("01-aml-leukostasis.yaml")
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"}
        with httpx.Client(headers=headers, timeout=10) as c:
            for r in [res["patient"], *res["observations"], *res["conditions"]]:
                put = c.put(f"{base}/{r['resourceType']}/{r['id']}", json=r)
                assert put.status_code in (200, 201), put.text
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def _request(base: str, token: str = TOKEN) -> dict:
    return {"hook": "patient-view", "hookInstance": "5e4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a", "fhirServer": base,
            "fhirAuthorization": {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                  "scope": "patient/Patient.read patient/Observation.read", "subject": "leukos"},
            "context": {"userId": "Practitioner/example", "patientId": PATIENT_ID}}


def test_gather_reads_every_key_from_the_server_with_the_token(fhir_base):
    kb = load_knowledge()
    got = asyncio.run(gather(CdsRequest.model_validate(_request(fhir_base)), kb, timeout_s=10,
                             allowlist=(fhir_base,)))
    res = resources_for("01-aml-leukostasis.yaml")
    assert got["patient"]["id"] == PATIENT_ID
    assert got["labs"]["type"] == "searchset"
    assert {e["resource"]["id"] for e in got["labs"]["entry"]} == {o["id"] for o in res["observations"]}
    assert len(got["conditions"]["entry"]) == len(res["conditions"])
    assert got["meds"]["resourceType"] == "Bundle" and not got["meds"].get("entry")
    seen = httpx.get(fhir_base.replace("/fhir", "/__seen")).json()
    assert seen["ok"] and seen["authorizations"] >= 4


def test_prefetch_present_is_not_fetched_again(fhir_base):
    kb = load_knowledge()
    req = _request(fhir_base)
    req["prefetch"] = {"patient": {"resourceType": "Patient", "id": PATIENT_ID}, "labs": None,
                       "conditions": None, "meds": None}
    got = asyncio.run(gather(CdsRequest.model_validate(req), kb, timeout_s=10, allowlist=(fhir_base,)))
    assert got["labs"] is None  # null = "no data": respected, not re-read


def test_wrong_token_leaves_the_labs_unobtainable_412_without_the_token_in_the_message(fhir_base):
    kb = load_knowledge()
    with pytest.raises(PrefetchMissing, match="HTTP 401") as exc:
        asyncio.run(gather(CdsRequest.model_validate(_request(fhir_base, token="wrong")), kb, timeout_s=10,
                           allowlist=(fhir_base,)))
    assert "wrong" not in str(exc.value)


def test_plain_http_to_a_remote_server_is_refused():
    kb = load_knowledge()
    base = "http://fhir.example.org/fhir"
    with pytest.raises(PrefetchMissing, match="https"):
        asyncio.run(gather(CdsRequest.model_validate(_request(base)), kb, timeout_s=1, allowlist=(base,)))


def test_server_not_on_the_allow_list_is_never_contacted(fhir_base):
    kb = load_knowledge()
    before = httpx.get(fhir_base.replace("/fhir", "/__seen")).json()["authorizations"]
    with pytest.raises(PrefetchMissing, match="allow-list"):
        asyncio.run(gather(CdsRequest.model_validate(_request(fhir_base)), kb, timeout_s=10, allowlist=()))
    assert httpx.get(fhir_base.replace("/fhir", "/__seen")).json()["authorizations"] == before


@needs_engine()
@needs_fhir()
def test_patient_view_through_the_fhir_server_matches_prefetch(fhir_base, tmp_path):
    dev_client = Client(create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES,
                                                   fhir_server_allowlist=(fhir_base,),
                                                   audit_log_path=tmp_path / "audit.jsonl")))
    via_server = dev_client.post("/cds-services/leukos-patient-view", json=_request(fhir_base))
    assert via_server.status_code == 200, via_server.text
    via_prefetch = dev_client.post("/cds-services/leukos-patient-view",
                                   json={**patient_view_request("01-aml-leukostasis.yaml"),
                                         "hookInstance": _request(fhir_base)["hookInstance"]})
    summaries = [c["summary"] for c in via_server.json()["cards"]]
    assert summaries and summaries == [c["summary"] for c in via_prefetch.json()["cards"]]
