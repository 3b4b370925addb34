"""CDS cards speak clinical language (issue 12's rule for every surface): no JSON, no code names.

Each bundled example is sent as a patient-view prefetch and as an order-select for leukapheresis;
every card summary and detail is read the way a clinician in the EHR sees it.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import EXAMPLES
from tests.service.fhir_data import order_select_request, patient_view_request

CASES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
# a code name: snake_case or a dotted field path (labs.x.y, findings.x); URLs are taken out first
CODE_NAME = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b|\b(?:labs|findings|patient)\.[a-z_.]+")
URL = re.compile(r"\]\([^)]*\)|https?://\S+")


def _read_as_a_clinician(card: dict) -> str:
    text = card["summary"] + "\n" + card["detail"]
    return URL.sub("", text)


@pytest.mark.parametrize("example", CASES)
def test_cards_have_no_json_and_no_code_names(dev_client, example):
    bodies = [patient_view_request(example)]
    bodies.append(order_select_request(example, "leukapheresis"))
    for body in bodies:
        r = dev_client.post(f"/cds-services/leukos-{body['hook']}", json=body)
        assert r.status_code == 200, r.text
        for card in r.json()["cards"]:
            text = _read_as_a_clinician(card)
            assert "```" not in text and '{"' not in text, (example, card["summary"])
            found = CODE_NAME.findall(text)
            assert not found, (example, card["summary"], found[:5])


def test_card_uuid_is_uuid5_of_the_hook_instance_and_finding():
    # card_uuid writes uuid5 out by hand (cheaper per card): it must give uuid.uuid5's exact text
    import uuid

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from leukos.service.cds.cards import _NS, card_uuid

    @settings(max_examples=500, deadline=None, derandomize=True)
    @given(st.text(), st.text())
    def check(hook_instance, key):
        try:
            expected = str(uuid.uuid5(_NS, f"{hook_instance}/{key}"))
        except UnicodeEncodeError:  # lone surrogates: both refuse
            with pytest.raises(UnicodeEncodeError):
                card_uuid(hook_instance, key)
            return
        assert card_uuid(hook_instance, key) == expected

    check()
    assert card_uuid("d0f7c6a2-0000-4000-8000-000000000000", "tls") == str(
        uuid.uuid5(_NS, "d0f7c6a2-0000-4000-8000-000000000000/tls"))


# a decimal number as a card writes it (not part of a version, a date, a reference or an id)
DECIMAL = re.compile(r"(?<![\w.\-/:])(\d+\.\d+)(?![\w.\-/])")


def _significant(number: str) -> int:
    return len(number.replace(".", "").lstrip("0"))


@pytest.mark.parametrize("patient", range(0, 40, 3))
def test_card_numbers_carry_no_spurious_precision(dev_client, patient):
    """A derived count is written as the working writes it: absolute blasts 219.891 ×10⁹/L (WBC x blasts %)
    read as a measurement to the thousandth; the cards say 219.9, as their working does (a value "entered
    as" is quoted as the laboratory sent it). And a percentage in the working carries its unit."""
    from benchmarks.service_peers.request import patient_view_request as cohort_request

    r = dev_client.post("/cds-services/leukos-patient-view", json=cohort_request(patient))
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    assert cards
    for card in cards:
        text = re.sub(r"\(entered as [^)]*\)", "", _read_as_a_clinician(card))  # as the laboratory sent it
        over = [n for n in DECIMAL.findall(text) if _significant(n) > 4]
        assert not over, (card["summary"], over)
        bare = re.findall(r"\(% of leukocytes\): [0-9.]+(?! %)\s", text)
        assert not bare, (card["summary"], bare)
