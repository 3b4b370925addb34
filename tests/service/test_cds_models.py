"""Golden tests of the CDS Hooks 2.0 wire models, from the specification's examples.

The fixtures retype, minimally, the examples of HL7/cds-hooks v2.0.1 ``input/pagecontent/index.md``
(discovery, request with fhirAuthorization, card response, feedback) and the constraints of its
card table (summary "<140-character", selectionBehavior required with suggestions, appContext only
for smart links).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from leukos.service.cds.models import Card, CdsRequest, CdsResponse, Discovery, Feedback, Link

SPEC_DISCOVERY = {"services": [
    {"hook": "patient-view", "title": "Static CDS Service Example",
     "description": "An example of a CDS Service that returns a card with SMART app recommendations.",
     "id": "static-patient-view", "prefetch": {"patientToGreet": "Patient/{{context.patientId}}"}},
    {"hook": "order-select", "title": "Order Echo CDS Service",
     "description": "An example of a CDS Service that simply echoes the order(s) being placed",
     "id": "order-echo", "prefetch": {"patient": "Patient/{{context.patientId}}",
                                      "medications": "MedicationRequest?patient={{context.patientId}}"}},
]}

SPEC_REQUEST = {
    "hookInstance": "23f1a303-991f-4118-86c5-11d99a39222e", "fhirServer": "https://fhir.example.org",
    "hook": "patient-view",
    "fhirAuthorization": {"access_token": "some-opaque-fhir-access-token", "token_type": "Bearer",
                          "expires_in": 300, "scope": "user/Patient.read user/Observation.read",
                          "subject": "cds-service4"},
    "context": {"userId": "Practitioner/example", "patientId": "1288992", "encounterId": "89284"},
    "prefetch": {"patientToGreet": {"resourceType": "Patient", "gender": "male", "birthDate": "1925-12-23",
                                    "id": "1288992", "active": True}},
}

SPEC_RESPONSE = {"cards": [
    {"uuid": "4e0a3a1e-3283-4575-ab82-028d55fe2719", "summary": "Example Card", "indicator": "info",
     "detail": "This is an example card.",
     "source": {"label": "Static CDS Service Example", "url": "https://example.com",
                "icon": "https://example.com/img/icon-100px.png"},
     "links": [{"label": "Google", "url": "https://google.com", "type": "absolute"},
               {"label": "Github", "url": "https://github.com", "type": "absolute"},
               {"label": "SMART Example App", "url": "https://smart.example.com/launch", "type": "smart",
                "appContext": "{\"session\":3456356,\"settings\":{\"module\":4235}}"}]},
    {"summary": "Another card", "indicator": "warning", "source": {"label": "Static CDS Service Example"}},
]}

SPEC_FEEDBACK = {"feedback": [
    {"card": "4e0a3a1e-3283-4575-ab82-028d55fe2719", "outcome": "accepted",
     "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
     "outcomeTimestamp": "2020-12-11T00:00:00Z"},
    {"card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcome": "overridden",
     "overrideReason": {"reason": {"code": "reason-code-provided-by-service",
                                   "system": "http://example.org/cds-services/fhir/CodeSystem/override-reasons",
                                   "display": "Patient refused"},
                        "userComment": "clarification of why this was overridden"},
     "outcomeTimestamp": "2020-12-11T00:00:00Z"},
]}


@pytest.mark.parametrize("model, example", [(Discovery, SPEC_DISCOVERY), (CdsRequest, SPEC_REQUEST),
                                            (CdsResponse, SPEC_RESPONSE), (Feedback, SPEC_FEEDBACK)])
def test_spec_examples_round_trip(model, example):
    parsed = model.model_validate(example)
    assert parsed.model_dump(exclude_none=True, mode="json") == example


def test_access_token_is_not_in_repr():
    assert "some-opaque-fhir-access-token" not in repr(CdsRequest.model_validate(SPEC_REQUEST))


def test_request_tolerates_cds_hooks_3_additions():
    req = CdsRequest.model_validate({**SPEC_REQUEST, "hookVersion": "1.0", "extension": {"x": 1}})
    assert req.hook == "patient-view"


def test_fhir_authorization_requires_fhir_server():
    bad = {k: v for k, v in SPEC_REQUEST.items() if k != "fhirServer"}
    with pytest.raises(ValidationError, match="fhirServer is required"):
        CdsRequest.model_validate(bad)


SOURCE = {"label": "leukos"}


@pytest.mark.parametrize("card, message", [
    ({"summary": "x" * 140, "indicator": "info", "source": SOURCE}, "at most 139"),
    ({"summary": "s", "indicator": "hard-stop", "source": SOURCE}, "indicator"),
    ({"summary": "s", "indicator": "info", "source": SOURCE,
      "suggestions": [{"label": "do it", "actions": []}]}, "selectionBehavior"),
    ({"summary": "s", "indicator": "info", "source": SOURCE, "overrideReasons": [{"code": "x"}]}, "display"),
    ({"summary": "s", "indicator": "info"}, "source"),
])
def test_card_constraints(card, message):
    with pytest.raises(ValidationError, match=message):
        Card.model_validate(card)


def test_app_context_only_on_smart_links():
    with pytest.raises(ValidationError, match="smart"):
        Link(label="x", url="https://x", type="absolute", appContext="{}")
    assert Card.model_validate({"summary": "x" * 139, "indicator": "critical", "source": SOURCE}).summary


def test_response_bytes_are_the_json_of_the_response():
    """What the service sends (``json_bytes``) is the response's ``exclude_none`` JSON, byte for byte:
    clinical characters as UTF-8, absent fields left out, an empty list kept."""
    card = Card(uuid="48109a71-28a0-5ae2-a6e8-1ebf19860282", summary="WBC 260 ×10⁹/L — URGENT",
                detail="**Hyperleukocytosis**\n\n- Röllig C 2015 · status U: “unverified”\t\\ \"quoted\"",
                indicator="warning", source={"label": "leukos", "url": "http://127.0.0.1/about"},
                links=[{"label": "Open", "url": "http://127.0.0.1/ui/cds/x", "type": "absolute"}])
    for response in (CdsResponse(cards=[card, card.model_copy(update={"links": None})]), CdsResponse(cards=[])):
        assert response.json_bytes() == response.model_dump_json(exclude_none=True).encode()
    assert CdsResponse(cards=[]).json_bytes() == b'{"cards":[]}'
