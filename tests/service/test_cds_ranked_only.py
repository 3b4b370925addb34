"""The CDS cards are computed from an assessment whose differential is ranked but not explained (the
cards never show the differential); the page behind the card link assesses the case in full.

- The cards are byte-identical to the cards the full assessment gives: for every published validation
  case and every example in process (patient-view and each kind of draft order), and end to end
  through the real routes for the examples (against the same service made to assess in full).
- The routes ask for the ranking only; the page behind the link for the full assessment, and it shows
  the differential exactly as ``/api/assess`` gives it for the same case.
- The APL gate and the "treat the cause" advice of a leukemoid reaction hold on the card path.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from leukos.interop.case_format import case_from_dict, load_case_text
from leukos.knowledge import load_knowledge
from leukos.present import clinical_text
from leukos.service.app import create_app
from leukos.service.cds.cards import cards_for
from leukos.service.cds.models import CdsResponse
from leukos.service.cds.orders import order_cards
from leukos.service.cds.prefetch import bundle_from_prefetch
from leukos.service.engines import Engines, default_engines
from leukos.service.settings import ServiceSettings
from leukos.service.views import finding_views

from .conftest import EXAMPLES, Client, needs_engine, needs_fhir
from .fhir_data import DRAFTS, PATIENT_ID, order_select_request, patient_view_request

pytestmark = [needs_engine(), needs_fhir()]

PV = "/cds-services/leukos-patient-view"
OS = "/cds-services/leukos-order-select"
PUBLISHED = Path(__file__).resolve().parents[2] / "data" / "validation" / "published_cases.jsonl"
KB = load_knowledge()
HOOK = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
BASE = "http://testserver"
YAML_EXAMPLES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))


def _all_cases() -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for line in PUBLISHED.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            out.append((f"published:{rec['id']}", case_from_dict(rec["case"])))
    for p in sorted(EXAMPLES.iterdir()):
        if p.suffix in (".yaml", ".json"):
            out.append((f"example:{p.name}", load_case_text(p.read_bytes(), KB, name=p.name)))
    return out


CASES = _all_cases()


def _cards_json(case, a, engines: Engines) -> list[bytes]:
    """What each hook's route renders from an assessment ``a`` (views and cards, the order cards with the
    route's plan), as response JSON."""
    page = f"{BASE}/ui/cds/TOKEN"
    out = [CdsResponse(cards=cards_for(finding_views(a, KB), a, KB, hook_instance=HOOK, base_url=BASE,
                                       page_url=page)).model_dump_json(exclude_none=True).encode()]
    plan = None
    if engines.plan_fn is not None and not a.leukapheresis.apl_suspected:
        try:
            plan = engines.plan(case, {}, KB, a)
        except ValueError:  # as the route: no plan (e.g. no weight)
            plan = None
    for kind, draft in DRAFTS.items():
        cards = order_cards([draft], case, a, KB, hook_instance=HOOK, base_url=BASE, page_url=page,
                            plan=plan if kind == "leukapheresis" else None)
        out.append(CdsResponse(cards=cards).model_dump_json(exclude_none=True).encode())
    return out


@pytest.mark.parametrize("name, case", CASES, ids=[c[0] for c in CASES])
def test_cards_from_the_ranking_are_the_cards_of_the_full_assessment(name, case):
    engines = default_engines()
    full = engines.assess(case, KB)
    cheap = engines.assess(case, KB, explain_differential=False)
    assert cheap.differential_explained is False and full.differential_explained is True
    assert _cards_json(case, cheap, engines) == _cards_json(case, full, engines)


def test_leukemoid_reactions_keep_treat_the_cause_on_the_cards():
    engines = default_engines()
    seen = on_card = 0
    for name, case in CASES:
        full = engines.assess(case, KB)
        if "treat the cause" not in full.headline:
            continue
        seen += 1
        cheap = engines.assess(case, KB, explain_differential=False)
        assert "treat the cause, no leukapheresis" in cheap.headline, name
        assert cheap.leukapheresis.indicated is not True, name
        shown = [v.summary for v in finding_views(cheap, KB) if "treat the cause" in v.summary]
        assert shown == [v.summary for v in finding_views(full, KB) if "treat the cause" in v.summary], name
        on_card += bool(shown)
    # the validation set has leukemoid reactions leading the differential, some above 100 x10^9/L (on a card)
    assert seen >= 5 and on_card >= 1


# -- end to end: the routes ------------------------------------------------------------------------

def _app(tmp_path, sub: str, *, full_only: bool, asked: list[bool] | None = None) -> Client:
    from leukos.rules import assess

    def assess_fn(case, kb, *, explain_differential: bool = True):  # full_only: always the full assessment
        if asked is not None:
            asked.append(explain_differential)
        return assess(case, kb, explain_differential=explain_differential or full_only)

    d = default_engines()
    engines = Engines(assess_fn=assess_fn, plan_fn=d.plan_fn, simulate_fn=d.simulate_fn)
    (tmp_path / sub).mkdir()
    return Client(create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES,
                                             audit_log_path=tmp_path / sub / "audit.jsonl"), engines=engines))


def _without_token(body: str) -> str:
    return re.sub(r"/ui/cds/[A-Za-z0-9_-]+", "/ui/cds/TOKEN", body)


@pytest.fixture
def two_services(tmp_path):
    asked: list[bool] = []
    return _app(tmp_path, "cheap", full_only=False, asked=asked), _app(tmp_path, "full", full_only=True), asked


@pytest.mark.parametrize("example", YAML_EXAMPLES)
def test_routes_give_the_cards_of_the_full_assessment(two_services, example):
    cheap, full, asked = two_services
    calls = [(PV, patient_view_request(example))] + [(OS, order_select_request(example, k)) for k in DRAFTS]
    for path, body in calls:
        a, b = cheap.post(path, json=body), full.post(path, json=body)
        assert a.status_code == b.status_code == 200, (a.text, b.text)
        assert _without_token(a.text) == _without_token(b.text), (example, path)
    assert asked and not any(asked)  # every card call ranked the differential only


def _rows(page: str) -> list[tuple[str, str]]:
    """The differential table of a result page: (diagnosis code, row text) in order."""
    table = re.search(r'<table class="differential">(.*?)</table>', page, re.S)
    if table is None:
        return []
    return [(code, html.unescape(re.sub(r"\s+", " ", row)))
            for code, row in re.findall(r'<tr data-diagnosis="([^"]+)">(.*?)</tr>', table.group(1), re.S)]


@pytest.mark.parametrize("example", ["01-aml-leukostasis.yaml", "02-apl-coagulopathy.yaml",
                                     "05-cll-very-high-count.yaml", "06-leukemoid-reaction.yaml"])
def test_card_link_page_shows_the_differential_of_api_assess(tmp_path, example):
    asked: list[bool] = []
    c = _app(tmp_path, "svc", full_only=False, asked=asked)
    req = patient_view_request(example)
    r = c.post(PV, json=req)
    assert r.status_code == 200, r.text
    links = {lk["url"] for card in r.json()["cards"] for lk in card.get("links") or ()}
    assert len(links) == 1, links  # one page per call, on every card
    assert asked == [False]
    page = c.get(links.pop().replace(BASE, ""))
    assert page.status_code == 200
    assert asked == [False, True]  # the page assessed the case in full

    bundle = bundle_from_prefetch(req["prefetch"])
    api = c.post("/api/assess", content=json.dumps(bundle).encode(), headers={"content-type": "application/json"})
    assert api.status_code == 200, api.text
    diff = api.json()["differential"]
    assert diff, "the example has a differential through FHIR"
    rows = _rows(page.text)
    assert [code for code, _ in rows] == [e["code"] for e in diff]
    explained = 0
    for (_, row), e in zip(rows, diff, strict=True):
        assert f'"Rank">{e["rank"]}</td>' in row and f'"Likelihood">{e["likelihood"]}' in row
        assert f'"Diagnosis"><strong>{e["label"]}</strong>' in row
        for text in e["supporting"] + e["against"] + e["next_tests"]:
            assert clinical_text(text, KB) in row, (e["code"], text)
        explained += len(e["supporting"]) + len(e["next_tests"])
    assert explained, "the page shows the explanation, not a bare ranking"


def test_expired_and_unknown_links_are_gone(tmp_path):
    c = _app(tmp_path, "svc", full_only=False)
    assert c.get("/ui/cds/not-a-token").status_code == 404
    c.app.state.leukos.pages.ttl_s = -1  # every link made now is already expired
    r = c.post(PV, json=patient_view_request("01-aml-leukostasis.yaml"))
    url = r.json()["cards"][0]["links"][0]["url"]
    gone = c.get(url.replace(BASE, ""))
    assert gone.status_code == 404 and "Findings by urgency" not in gone.text


def test_the_link_keeps_the_case_not_an_assessment(tmp_path):
    from leukos.domain.case import Case

    c = _app(tmp_path, "svc", full_only=False)
    r = c.post(PV, json=patient_view_request("01-aml-leukostasis.yaml"))
    token = r.json()["cards"][0]["links"][0]["url"].rsplit("/", 1)[1]
    kept = c.app.state.leukos.pages.get(token)
    assert isinstance(kept, Case) and PATIENT_ID not in token


def _kept(c: Client, response) -> tuple[str, object]:
    token = response.json()["cards"][0]["links"][0]["url"].rsplit("/", 1)[1]
    return token, c.app.state.leukos.pages._items[token][1]


def test_the_link_keeps_the_request_body_and_the_page_gets_the_same_case(tmp_path):
    from leukos.interop.fhir import case_from_fhir
    from leukos.service.cds.routes import CaseFromBody

    c = _app(tmp_path, "svc", full_only=False)
    body = patient_view_request("01-aml-leukostasis.yaml")
    token, kept = _kept(c, c.post(PV, json=body))
    assert isinstance(kept, CaseFromBody) and isinstance(kept.body, bytes)
    assert json.loads(kept.body) == body
    again = c.app.state.leukos.pages.get(token)
    assert again == case_from_fhir(bundle_from_prefetch(body["prefetch"]), KB)
    assert again.value("wbc") is not None


def test_a_body_with_a_fhir_token_is_never_kept_the_case_is(tmp_path):
    from leukos.domain.case import Case

    c = _app(tmp_path, "svc", full_only=False)
    body = {**patient_view_request("01-aml-leukostasis.yaml"), "fhirServer": "https://fhir.example.org/r4",
            "fhirAuthorization": {"access_token": "SECRET-FHIR-TOKEN", "token_type": "Bearer", "expires_in": 300,
                                  "scope": "patient/*.read", "subject": "cds-service"}}
    token, kept = _kept(c, c.post(PV, json=body))
    assert isinstance(kept, Case) and "SECRET-FHIR-TOKEN" not in repr(kept)
    assert c.app.state.leukos.pages.get(token) is kept


def test_a_large_body_is_not_kept_the_case_is(tmp_path):
    from leukos.domain.case import Case
    from leukos.service.cds.routes import KEPT_BODY_MAX_BYTES

    c = _app(tmp_path, "svc", full_only=False)
    body = {**patient_view_request("01-aml-leukostasis.yaml"), "padding": "x" * KEPT_BODY_MAX_BYTES}
    token, kept = _kept(c, c.post(PV, json=body))
    assert isinstance(kept, Case) and c.app.state.leukos.pages.get(token) is kept


def test_an_order_select_link_keeps_the_body_and_gets_the_same_case(tmp_path):
    from leukos.interop.fhir import case_from_fhir
    from leukos.service.cds.routes import CaseFromBody

    c = _app(tmp_path, "svc", full_only=False)
    body = order_select_request("01-aml-leukostasis.yaml", "rbc")
    urls = [ln["url"] for card in c.post(OS, json=body).json()["cards"] for ln in card.get("links") or ()
            if "/ui/cds/" in ln["url"]]
    assert urls
    token = urls[0].rsplit("/", 1)[1]
    assert isinstance(c.app.state.leukos.pages._items[token][1], CaseFromBody)
    assert c.app.state.leukos.pages.get(token) == case_from_fhir(bundle_from_prefetch(body["prefetch"]), KB)
    assert c.get(urls[0].replace(BASE, "")).status_code == 200
