"""The UI's wording and form logic without a browser: numbers as typed, code names put into words,
doses for the weight, the form-to-case mapping (typed values win over an example), the order
sheet's labelled rows and the chart's axes."""

from __future__ import annotations

import dataclasses
import re

import pytest

from leukos import present
from leukos.domain.case import GENES
from leukos.errors import LeukosUserError
from leukos.interop.case_format import case_from_dict, parse_document
from leukos.knowledge import load_knowledge
from leukos.service.chart import Line, Panel, course_svg, nice_ticks
from leukos.service.ui import case_dict_from_form, form_from_document, parse_number

from .conftest import EXAMPLES

KB = load_knowledge()
SNAKE = re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b")


def _example(name: str) -> dict:
    return parse_document((EXAMPLES / name).read_bytes(), name=name)


@pytest.mark.parametrize(("text", "value"), [("6,8", 6.8), ("6.8", 6.8), (" 250 ", 250.0), ("0,05", 0.05), (".5", 0.5), ("0,125", 0.125), ("1,1250", 1.125)])
def test_decimal_comma_and_point(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["250,000", "1,125", "1,234,5", "6.8.1", "abc", "1e3", "6,8 g"])
def test_ambiguous_or_non_numbers_are_refused(text):
    with pytest.raises(ValueError):
        parse_number(text)


def test_offered_units_come_from_the_knowledge_data():
    assert KB.unit_offers["creatinine"] == ("umol/L", "mg/dL")
    assert all(units[0] == KB.analytes[name].unit for name, units in KB.unit_offers.items())
    assert present.unit_text(KB, "10*9/L") == "×10⁹/L" and present.unit_text(KB, "mm[Hg]") == "mmHg"


def test_code_names_in_rule_texts_become_clinical_words():
    text = present.clinical_text("Missing: findings.known_diagnosis and labs.creatinine.reference_high; "
                                 "plan it with `leukos plan`. See [rollig2015].", KB)
    assert "known diagnosis" in text and "Creatinine (upper reference limit)" in text
    assert "Röllig" in text and "leukapheresis plan below" in text
    assert not SNAKE.search(text) and "`" not in text and "findings." not in text


def test_dose_is_worked_out_for_the_weight():
    assert present.dose_for_weight("rasburicase (0.2 mg/kg IV over 30 min daily)", 70) == "0.2 mg/kg × 70 kg = 14 mg"
    assert present.dose_for_weight("hydroxyurea 50-100 mg/kg/day", 80) == "50-100 mg/kg/day × 80 kg = 4 g–8 g/day"
    assert present.dose_for_weight("rasburicase 0.2 mg/kg", None) is None
    assert present.dose_for_weight("hydration", 70) is None


def test_typed_values_win_over_the_example_and_cleared_fields_are_removed():
    base = _example("01-aml-leukostasis.yaml")
    form = form_from_document(base, KB)
    assert form["lab_wbc"] == "250" and form["unit_wbc"] == "10*3/uL"
    form.update(lab_wbc="180", unit_wbc="10*9/L", lab_blasts_pct="50", lab_potassium="", case_id="typed")
    case = case_from_dict(case_dict_from_form(form, KB, base), KB)
    assert case.value("wbc") == 180 and case.value("blasts_pct") == 50 and case.id == "typed"
    assert case.lab("potassium") is None  # cleared on the form: not taken from the example
    assert case.findings.smear.auer_rods is True  # not on the form: carried over (and listed on the page)
    unchanged = case_from_dict(case_dict_from_form(form_from_document(base, KB), KB, base), KB)
    assert unchanged.lab("creatinine").reference_high == 90  # the example's own entry is kept when not edited


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_round_trips_through_the_form(example):
    """Filling the form from an example and posting it back changes nothing the assessment reads."""
    base = _example(example)
    original = case_from_dict(_example(example), KB)
    form = form_from_document(base, KB)
    again = case_from_dict(case_dict_from_form(form, KB, base), KB)
    # a gene result "unknown" is not shown ("not known" on the form) and read as unknown either way
    assert dataclasses.replace(again.findings, genetics={}) == dataclasses.replace(original.findings, genetics={})
    assert {g: again.findings.gene(g) for g in GENES} == {g: original.findings.gene(g) for g in GENES}
    assert {k: again.value(k) for k in again.labs} == {k: original.value(k) for k in original.labs}
    try:
        from leukos.rules import assess
    except ImportError:
        return
    from leukos.domain.assessment import jsonable
    assert jsonable(assess(again, KB)) == jsonable(assess(original, KB))
    # and without the example behind it, the form alone holds every genetics, smear and marrow value
    alone = case_from_dict(case_dict_from_form(form, KB), KB)
    for gene in GENES:
        assert alone.findings.gene(gene) == original.findings.gene(gene), gene
    assert alone.findings.smear == original.findings.smear and alone.findings.marrow == original.findings.marrow
    for organ in ("splenomegaly", "hepatomegaly", "lymphadenopathy"):
        assert getattr(alone.findings, organ) == getattr(original.findings, organ), organ


def test_the_examination_is_on_the_form():
    """Splenomegaly counts in the differential (CML, myelofibrosis, CNL against a reactive count), but the
    form had no control for it, so a case typed on the page could not say so; the examination section
    now holds splenomegaly, hepatomegaly and lymphadenopathy (not recorded, present or absent)."""
    doc = case_dict_from_form({"lab_wbc": "180", "splenomegaly": "yes", "lymphadenopathy": "no"}, KB)
    assert doc["findings"] == {"splenomegaly": True, "lymphadenopathy": False}
    case = case_from_dict(doc, KB)
    assert case.findings.splenomegaly is True and case.findings.hepatomegaly is None
    # the report says them beside the symptoms, in words (not in the table of laboratory values)
    from leukos.service import ui

    aml = case_from_dict(_example("01-aml-leukostasis.yaml"), KB)
    assert ui._examination(aml, KB) == "splenomegaly absent, hepatomegaly absent"
    assert not any(label.lower() in ("splenomegaly", "hepatomegaly") for label, _ in ui._inputs(aml, KB))
    form = form_from_document(_example("04-cml-chronic-phase.yaml"), KB)
    assert form["splenomegaly"] == ("yes" if _example("04-cml-chronic-phase.yaml")["findings"]["splenomegaly"] else "no")


def test_issue_9_fields_map_to_the_case_document():
    form = {"lab_wbc": "104", "lab_monocytes_abs": "1,2", "unit_monocytes_abs": "10*3/uL", "jak2": "positive",
            "calr": "negative", "smear_teardrop_cells": "yes", "smear_dysgranulopoiesis": "no",
            "marrow_fibrosis_grade": "3", "marrow_blasts_pct": "2.5"}
    doc = case_dict_from_form(form, KB)
    assert doc["labs"]["monocytes_abs"] == {"value": 1.2, "unit": "10*3/uL"}
    assert doc["findings"] == {"genetics": {"jak2": "positive", "calr": "negative"},
                               "smear": {"teardrop_cells": True, "dysgranulopoiesis": False},
                               "marrow": {"fibrosis_grade": 3, "blasts_pct": 2.5}}
    # a finding cleared on the form is removed from the example behind it, not kept silently
    base = _example("22-chronic-neutrophilic-leukaemia.yaml")
    form = form_from_document(base, KB)
    assert form["csf3r"] == "positive" and form["marrow_blasts_pct"] == "2" and form["smear_toxic_granulation"] == "yes"
    form.update(csf3r="", marrow_blasts_pct="")
    case = case_from_dict(case_dict_from_form(form, KB, base), KB)
    assert case.findings.gene("csf3r").value == "unknown" and case.findings.marrow.blasts_pct is None


@pytest.mark.parametrize(("key", "typed", "doc_value"), [
    ("jak2", "maybe", "maybe"), ("smear_teardrop_cells", "perhaps", "perhaps"),
    ("marrow_fibrosis_grade", "7", 7), ("marrow_fibrosis_grade", "2.5", 2.5), ("marrow_blasts_pct", "120", 120)])
def test_bad_findings_are_refused_by_the_case_model_itself(key, typed, doc_value):
    """The form does not re-implement the checks: the error is the one the CLI/API give for the document."""
    with pytest.raises(LeukosUserError) as form_err:
        case_from_dict(case_dict_from_form({"lab_wbc": "100", key: typed}, KB), KB)
    path = {"jak2": "findings.genetics.jak2", "smear_teardrop_cells": "findings.smear.teardrop_cells",
            "marrow_fibrosis_grade": "findings.marrow.fibrosis_grade",
            "marrow_blasts_pct": "findings.marrow.blasts_pct"}[key]
    doc: dict = {"labs": {"wbc": 100}}
    node = doc
    for part in path.split(".")[:-1]:
        node = node.setdefault(part, {})
    node[path.rsplit(".", 1)[1]] = doc_value
    with pytest.raises(LeukosUserError) as api_err:
        case_from_dict(doc, KB)
    assert [d.to_dict() for d in form_err.value.details] == [d.to_dict() for d in api_err.value.details]
    assert form_err.value.details[0].field == path


def test_a_findings_number_that_is_not_a_number_is_named():
    with pytest.raises(LeukosUserError) as e:
        case_dict_from_form({"lab_wbc": "100", "marrow_blasts_pct": "a lot"}, KB)
    (d,) = e.value.details
    assert d.field == "findings.marrow.blasts_pct" and d.value == "a lot" and "number" in d.expected


def test_an_empty_form_asks_for_the_white_count():
    with pytest.raises(LeukosUserError) as e:
        case_dict_from_form({}, KB)
    assert e.value.details[0].field == "labs.wbc"


def test_a_unit_not_offered_is_refused():
    with pytest.raises(LeukosUserError) as e:
        case_dict_from_form({"lab_wbc": "100", "unit_wbc": "K"}, KB)
    assert e.value.details[0].field == "labs.wbc.unit"


def test_working_tree_has_labels_not_json():
    working = {"wbc": {"value": 250.0, "unit": "10*9/L", "given": "250 K/uL"},
               "threshold": {"value": 100, "unit": "10*9/L", "status": "V", "source": ["ganzel2012"]},
               "hyperleukocytosis_present": True, "lineage": None}
    tree = present.working_tree(working, KB)
    flat = " | ".join(f"{n.label}: {n.text}" for n in tree.children)
    assert "White cell count: 250 ×10⁹/L (entered as 250 K/uL)" in flat
    assert "status V: verified" in flat and "Ganzel" in flat
    assert "hyperleukocytosis present: yes" in flat and "not recorded" in flat
    assert "{" not in flat and "None" not in flat and "True" not in flat


def test_order_sheet_rows_from_a_real_plan():
    pytest.importorskip("leukos.apheresis")
    from leukos.domain.assessment import jsonable
    from leukos.service.engines import default_engines

    eng = default_engines()
    if eng.plan_fn is None or eng.assess_fn is None:
        pytest.skip("planner not in this build")
    case = case_from_dict(_example("01-aml-leukostasis.yaml"), KB)
    plan = jsonable(eng.plan(case, {"draws": 50}, KB, eng.assess(case, KB)))
    sheet = present.order_sheet(plan, KB, indicated=True)
    labels = [r[0] for r in sheet.rows]
    assert labels[:3] == ["Device and protocol", "Total blood volume (TBV)", "Volume to process"]
    text = " ".join(" ".join(r[1] + r[2]) for r in sheet.rows)
    assert "mL/min" in text and "mg/kg/min" in text and "×10⁹/L" in text
    assert not SNAKE.search(text + " ".join(sheet.unverified) + sheet.references)
    assert not sheet.reference_only
    assert present.order_sheet(plan, KB, indicated=False).reference_only


def test_chart_axes_cover_the_data_and_thresholds():
    assert nice_ticks(0, 310, 4)[-1] >= 310 and nice_ticks(0.84, 1.2, 4)[0] <= 0.84
    svg = course_svg([0, 60, 120, 240], [Panel("Ionised calcium (mmol/L)", {"p05": [1.2, 0.9, 0.85, 1.1],
                                                                           "median": [1.2, 1.0, 0.95, 1.15],
                                                                           "p95": [1.2, 1.1, 1.05, 1.2]},
                                               (Line(0.9, "symptoms below 0.9 mmol/L"),))],
                     window_min=(0, 120), title="test")
    assert svg.count('class="panel"') == 1 and "symptoms below 0.9 mmol/L" in svg and "procedure" in svg
    assert "hours from the start" in svg and 'role="img"' in svg


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_report_fits_two_pages_even_with_a_reference_plan(dev_client, example):
    pytest.importorskip("weasyprint")
    form = form_from_document(_example(example), KB)
    data = {k: v for k, v in form.items() if isinstance(v, str) and v}
    data.update(symptom=form["symptoms"], base_example=example, plan_anyway="1")
    r = dev_client.post("/ui/report?format=pdf", data=data)
    if r.status_code == 503:
        pytest.skip("a part of the build is missing")
    assert r.status_code == 200, r.text[:300]
    assert 1 <= int(r.headers["X-Report-Pages"]) <= 2


def test_a_refused_lab_value_is_shown_with_the_unit_as_people_write_it():
    from leukos.errors import ErrorDetail, LeukosUserError
    from leukos.knowledge import load_knowledge
    from leukos.service.ui import _plain_errors

    exc = LeukosUserError([ErrorDetail("labs.wbc", "-3.0 10*9/L", "0-2000 10*9/L", "check the value")])
    items, by_field = _plain_errors(exc, load_knowledge())
    assert "“-3 ×10⁹/L”" in items[0]["text"] and "10*9" not in items[0]["text"], items[0]["text"]


def test_the_report_lists_genetics_smear_and_marrow_findings_used():
    """The report's "Values used" names every finding the differential read, not only the labs."""
    from leukos.cli.inputs import read_case
    from leukos.knowledge import load_knowledge
    from leukos.service.ui import _inputs

    kb = load_knowledge()
    rows = dict(_inputs(read_case(str(EXAMPLES / "22-chronic-neutrophilic-leukaemia.yaml"), kb), kb))
    assert rows["CSF3R mutation"] == "positive" and rows["BCR::ABL1"] == "negative"
    assert rows["Toxic granulation"] == "seen" and rows["Auer rods"] == "looked for, not seen"
    assert rows["Blasts in the marrow aspirate"] == "2 %"
    rows01 = dict(_inputs(read_case(str(EXAMPLES / "01-aml-leukostasis.yaml"), kb), kb))
    assert "unknown" not in rows01.values()  # a test not done is not listed as a value used


def test_symptoms_not_recorded_is_said_in_clinical_words(dev_client):
    """A case typed on the form without symptoms: the page says what to record in words the form uses,
    not the case file's syntax ("give symptoms: [] if there are none")."""
    r = dev_client.post("/ui/assess", data={"lab_wbc": "250", "unit_wbc": "10*9/L", "lab_blasts_pct": "80"})
    assert r.status_code == 200, r.text[:300]
    visible = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style|textarea)\b.*?</\1>", "", r.text, flags=re.S))
    assert "symptoms not recorded" in visible
    assert "record that there are none" in visible
    assert "[]" not in visible and "symptoms:" not in visible


@pytest.mark.parametrize("field", ["lab_wbc", "lab_platelets", "age_years", "marrow_blasts_pct"])
@pytest.mark.parametrize("typed", ["1e400", "-1e400", "1e-400"])
def test_a_number_beyond_a_double_is_refused_and_quoted_as_typed(dev_client, field, typed):
    """1e400 in any number of the form was a 500 (quoting the refused value back ran int() of infinity);
    it is a 422 page naming the field, with the value as typed (1e-400 must not read "0")."""
    data = {"lab_wbc": "250", "unit_wbc": "10*9/L", field: typed}
    r = dev_client.post("/ui/assess", data=data)
    assert r.status_code == 422, r.text[:300]
    visible = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style|textarea)\b.*?</\1>", "", r.text, flags=re.S))
    assert f"“{typed}”" in visible and "cannot be used" in visible


def test_a_number_that_is_not_finite_is_written_in_words():
    from leukos.present import fmt_num

    assert fmt_num(float("inf")) == "infinite" and fmt_num(float("-inf")) == "minus infinite"


def _visible(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style|textarea)\b.*?</\1>", "", html, flags=re.S)).split())


def test_leukapheresis_not_decided_is_never_shown_as_not_indicated(dev_client):
    """WBC 250 with 80 % blasts and symptoms not recorded: the assessment cannot decide (indicated is
    null). The page and the report said in bold "Not indicated", a negative answer to a question
    that was not answered; they say "Not decided" with the reason, and a reference plan says why it
    is for reference only."""
    form = {"lab_wbc": "250", "unit_wbc": "10*9/L", "lab_blasts_pct": "80"}
    page = _visible(dev_client.post("/ui/assess", data=form).text)
    assert "Not decided. Why:" in page and "Not indicated" not in page
    report = dev_client.post("/ui/report?format=html", data=form)
    assert report.status_code == 200
    assert "Not decided." in _visible(report.text) and "Not indicated" not in _visible(report.text)
    plan = _visible(dev_client.post("/ui/assess", data={**form, "weight_kg": "70", "height_cm": "175", "sex": "male",
                                                       "plan_anyway": "1"}).text)
    assert "could not decide whether leukapheresis is indicated" in plan
    assert "not indicated by the assessment" not in plan


def test_a_report_format_that_cannot_be_made_is_refused_not_answered_with_a_pdf(dev_client):
    r = dev_client.post("/ui/report?format=docx", data={"lab_wbc": "250", "unit_wbc": "10*9/L"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "“docx” cannot be made" in _visible(r.text)


def test_a_case_without_a_white_count_is_not_assessed_not_routine(dev_client):
    """A pasted case with no WBC has nothing assessed: the page's badge said "Routine" and "No finding
    calls for attention", which reads as a reassuring answer."""
    r = dev_client.post("/ui/assess", data={"paste": '{"format": "leukos-case/1", "labs": {}}'})
    assert r.status_code == 200
    page = _visible(r.text[r.text.index('id="assessment"'):])
    assert page.split("White cell count")[0].strip().endswith("Not assessed")  # the badge before the headline
    assert "Routine" not in page and "No finding calls for attention" not in page
    assert "hyperleukocytosis was not assessed" in page


@pytest.mark.parametrize("typed, says, never", [
    ({"marrow_fibrosis_grade": "12,5"}, "expected a whole number, or empty (not recorded)", "integer or null"),
    ({"weight_kg": "0"}, "expected more than 0", "exclusiveMinimum"),
    ({"age_years": "-5"}, "“-5” cannot be used", "-5.0"),
    ({"paste": "<script>alert(1)</script>"}, "The pasted text is plain text, not a case", "“str”"),
    ({"paste": "[1, 2]"}, "The pasted text is a list, not a case", "“list”"),
    ({"example": "../../etc/passwd"}, "“../../etc/passwd” cannot be used", "././"),
])
def test_form_errors_are_worded_for_the_clinician(dev_client, typed, says, never):
    data = typed if ("paste" in typed or "example" in typed) else {"lab_wbc": "250", "unit_wbc": "10*9/L", **typed}
    r = dev_client.post("/ui/assess", data=data)
    assert r.status_code == 422
    page = _visible(r.text)
    assert says in page and never not in page


def test_a_plan_that_cannot_be_made_asks_for_what_the_form_offers(dev_client):
    """Without a height the web page said "Add height (cm) to the case, or choose the mL/kg method
    explicitly (TBV method=ml per (kg), ...)": a case-file choice no control of the form offers."""
    r = dev_client.post("/ui/assess", data={"lab_wbc": "250", "unit_wbc": "10*9/L", "lab_blasts_pct": "80",
                                            "weight_kg": "70", "plan_anyway": "1"})
    said = _visible(r.text.split('id="plan-unavailable"', 1)[1].split("</p>", 1)[0])
    assert "Enter height (cm) on the form" in said
    assert "TBV method" not in said and "to the case" not in said and "mL/kg method" not in said


def test_a_number_of_400_digits_is_quoted_as_typed_not_as_infinity(dev_client):
    r = dev_client.post("/ui/assess", data={"lab_wbc": "9" * 400, "unit_wbc": "10*9/L"})
    page = _visible(r.text)
    assert r.status_code == 422 and "far too large to be a measurement" in page
    assert "Infinity" not in page and "1.8e308" not in page


@pytest.mark.parametrize("literal, quoted", [("9" * 400, "999999999999… (a number of 400 digits)"),
                                             ("1e400", "1e400"), ("-2.5E+401", "-2.5E+401")])
def test_a_pasted_case_quotes_a_huge_number_as_written_not_as_infinity(dev_client, literal, quoted):
    """A pasted case with a WBC of 400 digits (or 1e400) read "Infinity (or a number beyond ±1.8e308)":
    not what was typed, and no hint that the number is simply too large to be a count."""
    r = dev_client.post("/ui/assess", data={"paste": '{"format": "leukos-case/1", "labs": {"wbc": ' + literal + "}}"})
    page = _visible(r.text)
    assert r.status_code == 422 and quoted in page and "far too large to be a measurement" in page
    assert "Infinity" not in page and "1.8e308" not in page


@pytest.mark.parametrize("case_id", [b"A%FFB", b"A\xffB"])
def test_a_form_value_that_is_not_utf8_is_refused_not_assessed_as_a_guess(dev_client, case_id):
    """A case id sent as bytes that are not UTF-8 was read as "A�B" or "AÿB" and the case assessed
    under a name nobody typed."""
    r = dev_client.post("/ui/assess", content=b"lab_wbc=250&unit_wbc=10*9%2FL&case_id=" + case_id,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    page = _visible(r.text)
    assert r.status_code == 422 and "not readable text (it is not UTF-8)" in page
    assert "A\ufffdB" not in r.text and "AÿB" not in r.text and "Hyperleukocytosis" not in page
    ok = dev_client.post("/ui/assess", content=b"lab_wbc=250&unit_wbc=10*9%2FL&case_id=A%C3%A9B",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert ok.status_code == 200 and "AéB" in ok.text
