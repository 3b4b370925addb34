"""Issue 9 item 3: whenever APL is known or suspected, every surface carries the leukapheresis
contraindication: the plan (/api/plan), the simulation (/api/simulate) and every CDS card."""

from __future__ import annotations

import json

import pytest

from .conftest import EXAMPLES
from .fhir_data import order_select_request, patient_view_request

PV = "/cds-services/leukos-patient-view"
OS = "/cds-services/leukos-order-select"

# Suspected only through the smear: no coagulation tests, no PML::RARA (the gate's former hole).
SMEAR_ONLY = {"id": "apl-smear-only", "patient": {"age_years": 45, "sex": "female", "weight_kg": 70, "height_cm": 168},
              "labs": {"wbc": 150, "platelets": 60}, "symptoms": ["dyspnea_rest"],
              "findings": {"smear": {"abnormal_promyelocytes": True}}}
CASES = {"smear only": json.dumps(SMEAR_ONLY).encode(),
         "APL with DIC (example 02)": (EXAMPLES / "02-apl-coagulopathy.yaml").read_bytes()}


def _apl(contraindications) -> bool:
    return any("APL" in c for c in contraindications)


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_carries_the_contraindication(dev_client, name):
    r = dev_client.post("/api/plan", content=CASES[name], headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["recommended"] is False and _apl(plan["contraindications"]), name


@pytest.mark.parametrize("name", sorted(CASES))
def test_simulate_carries_the_contraindication(dev_client, name):
    r = dev_client.post("/api/simulate?draws=5&hours_after=1", content=CASES[name],
                        headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    sim = r.json()
    assert sim["recommended"] is False and _apl(sim["contraindications"]), name


def test_every_patient_view_card_carries_the_contraindication(dev_client):
    cards = dev_client.post(PV, json=patient_view_request("02-apl-coagulopathy.yaml")).json()["cards"]
    assert len(cards) > 1
    for c in cards:
        assert "APL" in c["summary"] or "Leukapheresis contraindicated" in c["detail"], c["summary"]


@pytest.mark.parametrize("order", ["rbc", "gcsf", "leukapheresis"])
def test_every_order_select_card_carries_the_contraindication(dev_client, order):
    cards = dev_client.post(OS, json=order_select_request("02-apl-coagulopathy.yaml", order)).json()["cards"]
    assert cards, order
    for c in cards:
        assert "APL" in c["summary"] or "Leukapheresis contraindicated" in c["detail"], c["summary"]


def test_no_contraindication_on_cards_without_apl(dev_client):
    cards = dev_client.post(PV, json=patient_view_request("01-aml-leukostasis.yaml")).json()["cards"]
    assert cards and not any("Leukapheresis contraindicated" in c["detail"] for c in cards)
