"""What the wording memo keeps after a CDS call: knowledge texts only, never a patient's values.

The memo of worded texts (``leukos.present.Labels.text_cache``) lives as long as the process. The
cards of a patient with values no knowledge text holds (WBC 271.37, blasts 83.19 %, an LDH upper
limit of 263) are worded in full, and afterwards no kept text holds one of those values; nor, once
the full assessment is laid out as its page lays it out, the organism the clinician typed.
"""

from __future__ import annotations

import json

from leukos import present
from leukos.domain.assessment import jsonable
from leukos.interop.case_format import case_from_dict
from leukos.knowledge import load_knowledge
from leukos.rules import assess
from leukos.service.cds.cards import cards_for
from leukos.service.views import finding_views

KB = load_knowledge()


def test_no_kept_text_holds_the_patients_values():
    case = case_from_dict({
        "format": "leukos-case/1", "id": "memo-1", "as_of": "2026-03-01T08:00:00Z",
        "patient": {"age_years": 54, "sex": "female"},
        "labs": {"wbc": 271.37, "blasts_pct": 83.19, "potassium": 6.37, "platelets": 27,
                 "hemoglobin": 7.7, "ldh": {"value": 1451, "unit": "U/L", "reference_high": 263},
                 "uric_acid": {"value": 9.2, "unit": "mg/dL"}},
        "findings": {"infection": {"present": True, "organism": "Quokkabacter zebrensis"}},
    }, KB)
    a = assess(case, KB)
    cards = cards_for(finding_views(a, KB), a, KB, hook_instance="h-1", base_url="http://x", page_url=None)
    shown = "\n".join(c.summary + "\n" + (c.detail or "") for c in cards)
    assert "271" in shown and "226" in shown  # the values are on the cards (absolute blasts 225.8)
    kept = present.labels(KB).text_cache
    assert kept  # the knowledge texts of those cards are kept
    leaked = [t for t in kept if any(v in t for v in ("271", "225.7", "225.8", "83.19", "6.37", "1451", "263"))]
    assert leaked == []

    page = jsonable(a)
    assert "Quokkabacter zebrensis" in json.dumps(page)  # the assessment carries it ...
    present.working_tree(page, KB)  # ... and the page words it
    assert not [t for t in kept if "Quokkabacter" in t]
    assert not [w for w in present.labels(KB).word_cache if "Quokkabacter" in w]


def test_citation_views_keep_knowledge_keys_only():
    from leukos.service.views import cite

    known = next(iter(KB.citations))
    views = cite(KB, (known, "fhir:Observation/p-77-lab-3"))
    assert [v.key for v in views] == [known, "fhir:Observation/p-77-lab-3"]  # shown as it is, not dropped
    derived = present.labels(KB).derived
    assert "fhir:Observation/p-77-lab-3" not in derived.get("citation_views", {})
    assert not any("fhir:Observation/p-77-lab-3" in g for g in derived.get("citation_view_groups", {}))
    assert known in derived["citation_views"]
