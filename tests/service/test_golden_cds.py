"""Golden outputs of the CDS patient-view path: a guard for refactorings that must not change a byte.

Speed work on the FHIR import (leukos.interop.fhir, fhir_lean), the card rendering (service.cds.cards,
leukos.present, service.views) and the middlewares must leave every output as it was. This test replays
fixed inputs and compares with files generated once from the code before that work
(tests/service/golden/*.json):

- the full CDS response JSON (cards with their detail Markdown) of the benchmark request, of every
  bundled example as an EHR would send it, and of order-select calls (the page token, random by
  design, is replaced by ``<token>``);
- the error body (status, JSON) of hostile CDS requests;
- ``repr`` of the Case ``case_from_fhir`` builds, or of the error it raises (class, title and every
  detail: field, value, expected, fix), for several Bundles and for a deterministic corpus of
  mutations of the benchmark Bundle (wrong types, bad codes, unknown elements, missing elements,
  on every element path of one Observation and of the Patient).

When an output changes on purpose (new knowledge data, new wording), regenerate with
``LEUKOS_REGEN_GOLDEN=1 pytest tests/service/test_golden_cds.py`` and review the diff: this file
checks that code changes meant to be invisible are, not that the output is right.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from leukos.service.app import create_app
from leukos.service.settings import ServiceSettings

from .conftest import EXAMPLES, REPO, Client, needs_engine, needs_fhir
from .fhir_data import order_select_request, patient_view_request

pytestmark = [needs_engine(), needs_fhir()]

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("LEUKOS_REGEN_GOLDEN") == "1"
PV = "/cds-services/leukos-patient-view"
OS = "/cds-services/leukos-order-select"
_TOKEN = re.compile(r"/ui/cds/[A-Za-z0-9_-]+")


def _bench_request() -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks.service_peers.request import patient_view_request
    finally:
        sys.path.remove(str(REPO))
    return patient_view_request()


def _example_request(example: str) -> dict[str, Any]:
    return patient_view_request(example, stable_urls=True)


EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))


def _cds_cases() -> dict[str, tuple[str, dict[str, Any]]]:
    cases: dict[str, tuple[str, dict[str, Any]]] = {"benchmark": (PV, _bench_request())}
    for name in EXAMPLE_FILES:
        cases[f"example:{name}"] = (PV, _example_request(name))
    for example, order in (("01-aml-leukostasis.yaml", "leukapheresis"), ("02-apl-coagulopathy.yaml", "leukapheresis"),
                           ("01-aml-leukostasis.yaml", "rbc"), ("03-all-tls.yaml", "gcsf")):
        cases[f"order:{example}:{order}"] = (OS, order_select_request(example, order, stable_urls=True))
    # the benchmark request with a conflict, a text-only code, a site's vendor element, an unused status
    b = _bench_request()
    obs = [e["resource"] for e in b["prefetch"]["labs"]["entry"]]
    dup = copy.deepcopy(obs[2])
    dup["id"] = "lab-dup"
    dup["valueQuantity"]["value"] = 300
    b["prefetch"]["labs"]["entry"].append({"fullUrl": "urn:uuid:dup", "resource": dup})
    obs[6]["code"] = {"text": "Hemoglobin"}
    obs[5]["status"] = "preliminary"
    obs[7]["status"] = "cancelled"
    obs[8]["extension"] = [{"url": "http://example.org/x", "valueString": "y"}]
    obs[9]["vendorElement"] = 1
    cases["benchmark:variants"] = (PV, b)
    return cases


def _hostile_cds() -> dict[str, tuple[str, Any]]:
    """Hostile requests, most of them refused: (path, body bytes or JSON)."""
    out: dict[str, tuple[str, Any]] = {}
    base = _bench_request()

    def variant(name: str, mutate) -> None:
        b = copy.deepcopy(base)
        mutate(b)
        out[name] = (PV, b)

    def obs(b: dict, i: int) -> dict:
        return b["prefetch"]["labs"]["entry"][i]["resource"]

    variant("unit-unknown", lambda b: obs(b, 0)["valueQuantity"].update(code="furlongs", unit="furlongs"))
    variant("unit-wrong-dimension", lambda b: obs(b, 0)["valueQuantity"].update(code="mg/dL", unit="mg/dL"))
    variant("implausible", lambda b: obs(b, 2)["valueQuantity"].update(value=9e7))
    variant("bad-status", lambda b: obs(b, 0).update(status="done"))
    variant("bad-date", lambda b: obs(b, 0).update(effectiveDateTime="2026-02-30T08:00:00Z"))
    variant("quantity-extra", lambda b: obs(b, 0)["valueQuantity"].update(valu=3))
    variant("string-value", lambda b: obs(b, 0)["valueQuantity"].update(value="182"))
    variant("wrong-patient", lambda b: obs(b, 3).update(subject={"reference": "Patient/other"}))
    variant("patient-bad-gender", lambda b: b["prefetch"]["patient"].update(gender="f"))
    variant("patient-bad-birth", lambda b: b["prefetch"]["patient"].update(birthDate="1968-13-01"))
    variant("range-swapped", lambda b: obs(b, 0)["referenceRange"][0].update(low={"value": 20}, high={"value": 4}))
    variant("range-negative", lambda b: obs(b, 0)["referenceRange"][0].update(high={"value": -1}))
    variant("dar-and-value", lambda b: obs(b, 0).update(dataAbsentReason={"text": "x"}))
    variant("coding-not-list", lambda b: obs(b, 0)["code"].update(coding={"code": "6690-2"}))
    variant("resource-type-unknown", lambda b: obs(b, 0).update(resourceType="Observatio"))
    variant("hook-mismatch", lambda b: b.update(hook="order-select"))
    variant("no-patient-id", lambda b: b["context"].pop("patientId"))
    variant("prefetch-not-object", lambda b: b.update(prefetch=[1]))
    out["not-json"] = (PV, b"{not json")
    out["nan"] = (PV, json.dumps(base).replace('"value": 182', '"value": NaN').encode())
    out["deep"] = (PV, b'{"hook": "patient-view", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    return out


def _app_client(tmp_path: Path) -> Client:
    return Client(create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES,
                                             audit_log_path=tmp_path / "audit.jsonl")))


def _post(client: Client, path: str, body: Any) -> tuple[int, str]:
    """Status and body; the page token (random by design) and the versions (they change with every
    release and knowledge edit, and say nothing of the rendering) are replaced by placeholders."""
    from leukos import __version__
    from leukos.knowledge import load_knowledge

    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post(path, content=content, headers={"Content-Type": "application/json"})
    text = _TOKEN.sub("/ui/cds/<token>", r.text)
    text = text.replace(f"ruleset {load_knowledge().ruleset_version}", "ruleset <ruleset>")
    return r.status_code, text.replace(f"leukos {__version__}", "leukos <version>")


def _check(name: str, got: dict[str, Any]) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(got, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if REGEN:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, "utf-8")
        return
    want = json.loads(path.read_text("utf-8"))
    assert sorted(got) == sorted(want), f"{name}: the set of cases changed"
    for key in want:
        assert got[key] == want[key], f"{name}[{key}] differs from the golden output"


def test_cds_responses_are_unchanged(tmp_path):
    client = _app_client(tmp_path)
    got = {}
    for key, (path, body) in _cds_cases().items():
        status, text = _post(client, path, body)
        assert status == 200, (key, text)
        got[key] = text
    assert any("artefact" in t.lower() for t in got.values())  # the corpus covers the artefact cards
    _check("cds_responses", got)


def test_cds_error_bodies_are_unchanged(tmp_path):
    client = _app_client(tmp_path)
    got = {}
    for key, (path, body) in _hostile_cds().items():
        status, text = _post(client, path, body)
        assert status < 500, (key, status, text)  # some are accepted (R4B reads "182" as a decimal)
        got[key] = f"{status} {text}"
    _check("cds_errors", got)


# -- case_from_fhir ------------------------------------------------------------------------------


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


_REPLACEMENTS = (None, 1, 2.5, True, "", " x ", "a  b", "2026-02-30", [], {}, [{}], {"bogus": 1}, ["x"])


def _bundles() -> dict[str, Any]:
    from leukos.service.cds.prefetch import bundle_from_prefetch

    out: dict[str, Any] = {}
    bench = bundle_from_prefetch(_bench_request()["prefetch"])
    out["benchmark"] = bench
    for name in EXAMPLE_FILES:
        out[f"example:{name}"] = bundle_from_prefetch(_example_request(name)["prefetch"])
    out["example-file:fhir-bundle-aml.json"] = json.loads((EXAMPLES / "fhir-bundle-aml.json").read_text("utf-8"))
    # mutations of one Observation (entry 1, the first lab) and of the Patient (entry 0), element by element
    for entry in (0, 1):
        resource = bench["entry"][entry]["resource"]
        for path in _paths(resource):
            for n, value in enumerate(_REPLACEMENTS):
                b = copy.deepcopy(bench)
                cur = b["entry"][entry]["resource"]
                for p in path[:-1]:
                    cur = cur[p]
                cur[path[-1]] = value
                out[f"mutate:{entry}:{'/'.join(map(str, path))}:{n}"] = b
            if isinstance(path[-1], str):  # the element removed
                b = copy.deepcopy(bench)
                cur = b["entry"][entry]["resource"]
                for p in path[:-1]:
                    cur = cur[p]
                del cur[path[-1]]
                out[f"mutate:{entry}:{'/'.join(map(str, path))}:del"] = b
        for extra in ("extension", "bogus", "valueString", "note"):  # an extra top-level element
            b = copy.deepcopy(bench)
            b["entry"][entry]["resource"][extra] = [{"url": "http://x", "valueString": "y"}] \
                if extra == "extension" else ([{"text": "n"}] if extra == "note" else "x")
            out[f"extra:{entry}:{extra}"] = b
    # shells
    for name, shell in {"type-document": {"type": "document"}, "total-negative": {"total": -1},
                        "timestamp-bad": {"timestamp": "2026"}, "entry-not-list": {"entry": {}},
                        "entry-fullurl-bad": {"entry": [{"fullUrl": " ", "resource": bench["entry"][0]["resource"]}]},
                        "no-type": {"type": None}, "unknown-key": {"bogus": 1}}.items():
        b = copy.deepcopy(bench)
        b.update(shell)
        out[f"shell:{name}"] = {k: v for k, v in b.items() if v is not None}
    out["not-a-bundle"] = bench["entry"][1]["resource"]
    out["a-list"] = [bench]
    return out


def _outcome(data: Any) -> str:
    from leukos.errors import LeukosUserError
    from leukos.interop.fhir import case_from_fhir

    try:
        return repr(case_from_fhir(copy.deepcopy(data)))
    except LeukosUserError as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'title', '')!r} {[repr(d) for d in exc.details]!r}"


def test_case_from_fhir_results_and_errors_are_unchanged():
    got: dict[str, str] = {}
    first: dict[str, str] = {}  # an outcome already seen is stored as "= <the first case that gave it>"
    for key, b in _bundles().items():
        text = _outcome(b)
        got[key] = f"= {first[text]}" if text in first else text
        first.setdefault(text, key)
    _check("case_from_fhir", got)


def test_case_from_fhir_does_not_modify_its_input():
    bundles = _bundles()
    for key in ("benchmark", "extra:1:bogus", "mutate:1:valueQuantity/value:1"):
        before = copy.deepcopy(bundles[key])
        _outcome_no_copy(bundles[key])
        assert bundles[key] == before, key


def _outcome_no_copy(data: Any) -> None:
    from leukos.errors import LeukosUserError
    from leukos.interop.fhir import case_from_fhir

    try:
        case_from_fhir(data)
    except LeukosUserError:
        pass


@pytest.mark.parametrize("key", ["benchmark", "example:01-aml-leukostasis.yaml"])
def test_case_from_fhir_twice_gives_the_same_case(key):
    """Memos kept across calls (validated elements, units, labels) do not change a second import."""
    b = _bundles()[key]
    assert _outcome(b) == _outcome(b)
