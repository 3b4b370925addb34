"""CDS Hooks 2.0 services: discovery, 412 on missing prefetch, feedback idempotency, cards.

Card tests build the prefetch as an EHR would (Patient + searchset Bundles of Observations) from the
bundled example cases, run the real importer and rules, and check the card rules of the spec.
"""

from __future__ import annotations

import html
import re

import pytest

from leukos.service.cds.prefetch import bundle_from_prefetch, prefetch_templates

from .conftest import needs_engine, needs_fhir
from .fhir_data import PATIENT_ID, order_select_request, patient_view_request

PV = "/cds-services/leukos-patient-view"
OS = "/cds-services/leukos-order-select"


def test_discovery_lists_services_with_prefetch(dev_client):
    services = {s["id"]: s for s in dev_client.get("/cds-services").json()["services"]}
    assert services["leukos-patient-view"]["hook"] == "patient-view"
    assert services["leukos-order-select"]["hook"] == "order-select"
    pre = services["leukos-patient-view"]["prefetch"]
    assert pre["patient"] == "Patient/{{context.patientId}}"
    assert "http://loinc.org|6690-2" in pre["labs"]  # WBC, automated (codes.md)
    for template in pre.values():  # only root-level context tokens (spec §Prefetch tokens)
        assert set(re.findall(r"\{\{(.*?)\}\}", template)) <= {"context.patientId"}


def test_missing_required_prefetch_without_fhir_server_is_412(dev_client):
    body = {"hook": "patient-view", "hookInstance": "b7c2f0a4-7f8e-4a2b-9c1d-0e4b6f1a2c3d",
            "context": {"userId": "Practitioner/1", "patientId": "p1"}, "prefetch": {"patient": None}}
    r = dev_client.post(PV, json=body)
    assert r.status_code == 412
    assert r.json()["details"][0]["field"] == "prefetch.labs"


def test_wrong_hook_for_service_is_422(dev_client):
    body = {"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "p1"}, "prefetch": {}}
    assert dev_client.post(PV, json=body).status_code == 422


def test_unknown_service_is_404(dev_client):
    body = {"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p1"}}
    assert dev_client.post("/cds-services/nope", json=body).status_code == 404


def test_malformed_request_is_422_with_field(dev_client):
    r = dev_client.post(PV, json={"hook": "patient-view"})
    assert r.status_code == 422
    assert {d["field"] for d in r.json()["details"]} >= {"body.hookInstance", "body.context"}


def test_feedback_is_idempotent(dev_client):
    fb = {"feedback": [{"card": "4e0a3a1e-3283-4575-ab82-028d55fe2719", "outcome": "overridden",
                        "overrideReason": {"userComment": "n/a"}, "outcomeTimestamp": "2026-03-01T08:00:00Z"}]}
    first = dev_client.post(f"{PV}/feedback", json=fb).json()
    again = dev_client.post(f"{PV}/feedback", json=fb).json()
    assert (first["new"], again["new"]) == (1, 0)
    assert len(dev_client.app.state.leukos.feedback) == 1


def test_prefetch_bundle_dedupes_and_drops_operation_outcomes():
    obs = {"resourceType": "Observation", "id": "o1"}
    prefetch = {"patient": {"resourceType": "Patient", "id": "p1"},
                "labs": {"resourceType": "Bundle", "type": "searchset",
                         "entry": [{"resource": obs}, {"resource": obs},
                                   {"resource": {"resourceType": "OperationOutcome"}}]},
                "conditions": None}
    b = bundle_from_prefetch(prefetch)
    assert [e["resource"]["resourceType"] for e in b["entry"]] == ["Patient", "Observation"]


def test_prefetch_codes_come_from_the_knowledge_base():
    from leukos.knowledge import load_knowledge
    kb = load_knowledge()
    labs = prefetch_templates(kb)["labs"]
    for analyte in kb.analytes.values():
        for code in analyte.loinc:
            assert f"http://loinc.org|{code}" in labs


@needs_engine()
@needs_fhir()
class TestCards:
    def test_patient_view_aml_leukostasis(self, dev_client):
        r = dev_client.post(PV, json=patient_view_request("01-aml-leukostasis.yaml"))
        assert r.status_code == 200, r.text
        cards = r.json()["cards"]
        assert cards, "hyperleukocytosis with leukostasis must give a card"
        order = {"critical": 0, "warning": 1, "info": 2}
        assert [order[c["indicator"]] for c in cards] == sorted(order[c["indicator"]] for c in cards)
        for c in cards:
            assert len(c["summary"]) < 140
            assert c["source"]["label"].startswith("leukos") and c["source"]["url"]
            assert "References:" in c["detail"] and "Working" in c["detail"]
            assert c["links"][0]["type"] == "absolute" and "/ui/cds/" in c["links"][0]["url"]
        assert cards[0]["indicator"] in ("critical", "warning")
        # the link opens the leukos page for this patient
        page = dev_client.get(cards[0]["links"][0]["url"].replace("http://testserver", ""))
        assert page.status_code == 200 and "Findings by urgency" in page.text

    def test_patient_view_is_deterministic(self, dev_client):
        a = dev_client.post(PV, json=patient_view_request("01-aml-leukostasis.yaml")).json()
        b = dev_client.post(PV, json=patient_view_request("01-aml-leukostasis.yaml")).json()
        assert [c["uuid"] for c in a["cards"]] == [c["uuid"] for c in b["cards"]]

    def test_apl_gives_a_critical_apl_card(self, dev_client):
        cards = dev_client.post(PV, json=patient_view_request("02-apl-coagulopathy.yaml")).json()["cards"]
        assert any("APL" in c["summary"] and c["indicator"] == "critical" for c in cards)

    def test_normal_count_gives_no_hyperleukocytosis_card(self, dev_client):
        cards = dev_client.post(PV, json=patient_view_request("07-normal-count.yaml")).json()["cards"]
        assert not any("yperleukocytosis" in c["summary"] for c in cards)

    @pytest.mark.parametrize("order, expect", [
        ("rbc", "RBC transfusion"),
        ("gcsf", "G-CSF"),
        ("leukapheresis", "Leukapheresis"),
    ])
    def test_order_select(self, dev_client, order, expect):
        r = dev_client.post(OS, json=order_select_request("01-aml-leukostasis.yaml", order))
        assert r.status_code == 200, r.text
        cards = r.json()["cards"]
        assert len(cards) == 1 and expect in cards[0]["summary"], cards

    def test_a_leukapheresis_order_card_says_why_no_volumes_were_computed(self, dev_client):
        """Without a weight the planner cannot plan: the card says so in words (it said the planner was
        "not available in this build", which was false, and "Indicated: True", a program's value)."""
        req = order_select_request("01-aml-leukostasis.yaml", "leukapheresis")
        (card,) = dev_client.post(OS, json=req).json()["cards"]
        d = card["detail"]
        assert "- Leukapheresis indicated\n" in d
        assert "No volumes computed (blood volume cannot be estimated): weight not recorded" in d
        assert "not available in this build" not in d
        assert not re.search(r": (True|False|None)\b", d)

        def body(oid, loinc, value, unit):
            return {"resource": {"resourceType": "Observation", "id": oid, "status": "final",
                                 "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
                                 "subject": {"reference": f"Patient/{PATIENT_ID}"},
                                 "effectiveDateTime": "2026-03-01T07:00:00Z",
                                 "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org",
                                                   "code": unit}}}

        req["prefetch"]["labs"]["entry"] += [body("wt", "29463-7", 70, "kg"), body("ht", "8302-2", 170, "cm")]
        (card,) = dev_client.post(OS, json=req).json()["cards"]
        assert re.search(r"- Plan: TBV [0-9.]+ L \(Nadler formula\), process [0-9.]+ L", card["detail"]), card["detail"]
        assert "No volumes computed" not in card["detail"]

    def test_the_page_behind_a_card_asks_for_a_missing_weight_in_the_ehr(self, dev_client):
        """The page opened from a card shows the EHR record, with no form to edit: what the planner
        needs is asked for in the EHR, not "add weight (kg) to the case"."""
        cards = dev_client.post(PV, json=patient_view_request("01-aml-leukostasis.yaml")).json()["cards"]
        page = dev_client.get(cards[0]["links"][0]["url"].replace("http://testserver", ""))
        unavailable = re.search(r'<p id="plan-unavailable">(.*?)</p>', page.text, re.S)
        assert unavailable is not None, page.text
        text = html.unescape(unavailable.group(1))
        assert "Record weight (kg) in the EHR (the next leukos card uses it)" in text, text
        assert "to the case" not in text

    def test_leukapheresis_order_in_apl_is_critical(self, dev_client):
        cards = dev_client.post(OS, json=order_select_request("02-apl-coagulopathy.yaml", "leukapheresis")).json()[
            "cards"]
        assert cards[0]["indicator"] == "critical" and "not recommended" in cards[0]["summary"]

    def test_unrelated_order_gives_no_card(self, dev_client):
        r = dev_client.post(OS, json=order_select_request("01-aml-leukostasis.yaml", "paracetamol"))
        assert r.json() == {"cards": []}


def test_patient_id_required(dev_client):
    body = {"hook": "patient-view", "hookInstance": "x", "context": {"userId": "Practitioner/1"},
            "prefetch": {"patient": None, "labs": None}}
    r = dev_client.post(PV, json=body)
    assert r.status_code in (422, 503)
    assert PATIENT_ID
