"""Members of a working that read as one clinical line, not as a program's fields.

- The diagnosis the leukapheresis advice followed: its name, where it came from (stated in the case,
  or the differential's leading diagnosis, not confirmed, with its likelihood) and the advice group,
  never "code: AML / sources: known" (its ``source`` is no citation).
- A differential's criterion points: "Auer rods: 2 points · status U: unverified", never "status: U".
- A tumour-lysis change from baseline: the measured change in per cent, never a bare fraction.
- The note on conflicting same-time results writes a unit code as people write it (×10³/µL).
"""

from __future__ import annotations

import textwrap

import pytest

from leukos import present
from leukos.interop.case_format import load_case_text
from leukos.knowledge import load_knowledge
from leukos.rules import assess

KB = load_knowledge()

AML_KNOWN = """
format: leukos-case/1
patient: {age_years: 60, sex: male, weight_kg: 80}
findings: {known_diagnosis: AML}
labs:
  wbc: {value: 250, unit: 10*9/L}
  blasts_pct: 80
"""


def _rows(obj) -> list[tuple[int, str, str]]:
    return present.working_rows(obj, KB)


def _case(text: str):
    return load_case_text(textwrap.dedent(text), KB)


def test_the_diagnosis_followed_is_one_line_with_its_basis():
    a = assess(_case(AML_KNOWN), KB)
    rows = _rows(a.leukapheresis.working)
    dx = [r for r in rows if r[1] == "diagnosis"]
    assert dx == [(0, "diagnosis", "Acute myeloid leukaemia (stated in the case); advice for acute leukaemia")]
    assert not any(label in ("sources", "code", "advice group", "likelihood") for _, label, _ in rows)


def test_a_leading_diagnosis_of_the_differential_says_it_is_not_confirmed():
    line = present._followed_diagnosis({"code": "CLL", "source": "differential", "likelihood": "moderate",
                                        "advice_group": "chronic_leukaemia"}, present.labels(KB))
    assert line == ("Chronic lymphocytic leukaemia (leading diagnosis of the differential, not confirmed, "
                    "likelihood moderate); advice for chronic leukaemia")


def test_no_diagnosis_followed_reads_none_known():
    assert _rows({"diagnosis": {"code": None, "source": None, "likelihood": None, "advice_group": None}}) == \
        [(0, "diagnosis", "none known")]


@pytest.mark.parametrize(("code", "words"), [("CML_CP", "Chronic myeloid leukaemia, chronic phase"),
                                             ("CML_AP", "Chronic myeloid leukaemia, accelerated phase"),
                                             ("CML_BP", "Chronic myeloid leukaemia, blast phase")])
def test_cml_phase_codes_have_names(code, words):
    assert present.labels(KB).diagnosis(code) == words


def test_differential_points_are_one_line_each_with_the_status_in_words():
    a = assess(_case(AML_KNOWN), KB)
    top = min(a.differential, key=lambda e: e.rank)
    rows = _rows(top.working)
    points = [text for depth, label, text in rows if depth == 1 and label.isdigit()
              and "point" in text]
    assert len(points) == len(top.working["points"]) > 0
    for text, p in zip(points, top.working["points"], strict=True):
        status = present.labels(KB).section("status")[p["status"]]
        assert text.endswith(f" · status {p['status']}: {status}")
        assert f": {present.fmt_num(p['weight'])} point" in text
    assert not any(label == "status" and text in ("V", "P", "U") for _, label, text in rows)


def test_the_change_from_baseline_is_a_percentage():
    a = assess(_case("""
        format: leukos-case/1
        patient: {age_years: 40, sex: female}
        labs:
          wbc: {value: 180, unit: 10*9/L}
          uric_acid:
            - {value: 8.8, unit: mg/dL, time: 2026-03-01T06:00:00Z}
            - {value: 9.4, unit: mg/dL, time: 2026-03-02T06:00:00Z}
        """), KB)
    uric = a.tls.working["criteria"]["uric_acid"]
    assert uric["measured_change"] == {"value": round(100 * (9.4 - 8.8) / 8.8, 1), "unit": "%"}
    rows = _rows(a.tls.working)
    assert (2, "measured change", "6.8 %") in rows
    assert not any("fraction" in label for _, label, _ in rows)


def test_a_conflict_note_writes_the_unit_in_words():
    case = _case("""
        format: leukos-case/1
        labs:
          wbc:
            - {value: 260, unit: 10*3/uL, time: 2026-03-01T18:00:00Z}
            - {value: 12, unit: 10*3/uL, time: 2026-03-01T18:00:00Z}
        """)
    note = next(w for w in case.import_notes if "conflicting" in w)
    assert "12 ×10³/µL" in note and "260 ×10³/µL" in note
    assert "10*3/uL" not in note


def test_leukostasis_organs_not_recorded_are_said_so():
    """Symptoms not recorded and one organ graded by the clinician: the other organs were not assessed,
    so the card, the page and the report say "not recorded" for them, never "None" (a program value) or
    "none" (which reads as "no symptom of that organ"), and the placements are not recorded either."""
    from leukos.service.views import finding_views

    a = assess(_case(AML_KNOWN + "leukostasis_grades: {pulmonary: 2}\n"), KB)
    point = next(p for v in finding_views(a, KB) for p in v.points if "organ grades" in p)
    assert "None" not in point
    assert "pulmonary 2, neurological not recorded, other not recorded" in point
    rows: dict[str, str] = {}
    for _, label, text in _rows(a.leukostasis.working):
        rows.setdefault(label, text)  # the organ basis comes first; the clinician's grades repeat the organs
    assert rows["neurological"] == rows["other"] == "not recorded"
    assert rows["pulmonary"] == "clinician grade 2"
    assert rows["placements"] == rows["ungraded symptoms"] == "not recorded"


def test_leukostasis_organs_without_symptoms_read_none_when_symptoms_were_recorded():
    """Symptoms recorded as none: each organ's basis is empty ("none"), grade 0, as recorded."""
    a = assess(_case(AML_KNOWN + "symptoms: []\n"), KB)
    assert a.leukostasis.organ_grades == {"pulmonary": 0, "neurological": 0, "other": 0}
    rows = {label: text for _, label, text in _rows(a.leukostasis.working)}
    assert rows["neurological"] == rows["other"] == rows["pulmonary"] == "none"
    assert rows["placements"] == rows["ungraded symptoms"] == "none"
