"""The web UI in a real browser: Debian's chromium driven by Playwright (never Playwright's own browser download).

Each flow a haematologist or an apheresis nurse uses: the short form, examples that fill it,
typed values that win over an example, errors at the field, results without code names or JSON
for every bundled example, the order sheet only when indicated, the chart, the 1-2 page report,
360 px screens, and axe-core (vendored from npm) with zero serious or critical violations.

Screenshots go to a temporary folder; with LEUKOS_SCREENSHOTS=1 they are written to
docs/screenshots/ (the ones committed there).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from leukos.service.settings import ServiceSettings

from .conftest import EXAMPLES, REPO
from .live import serve

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
AXE = "/static/vendor/axe-4.14.1.min.js"
EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
SNAKE = re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b")
CODE_DOTTED = re.compile(r"\b(?:labs|findings|patient|apheresis|management)\.[a-z_]+")
PY_VALUES = re.compile(r"\b(None|True|False|nan)\b")
JSONISH = re.compile(r"[{\[]\s*\"|\"\s*:\s*[\"{\[\d]|\\u00")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("LEUKOS_SCREENSHOTS") == "1":
        d = REPO / "docs" / "screenshots"
    else:
        d = tmp_path_factory.mktemp("screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def live_url(tmp_path_factory):
    settings = ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES,
                               audit_log_path=tmp_path_factory.mktemp("audit") / "audit.jsonl")
    with serve(settings) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: run scripts/system-deps/chromium.sh (make install does)")
    from playwright.sync_api import sync_playwright
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _new_page(browser, width=1280, height=1000):
    ctx = browser.new_context(viewport={"width": width, "height": height})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # Chromium logs every 4xx as a console error; a 422 for bad input is the designed answer.
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and "status of 422" not in m.text else None)
    return ctx, pg, errors


@pytest.fixture
def page(browser):
    ctx, pg, errors = _new_page(browser)
    yield pg
    ctx.close()
    assert not errors, f"browser errors: {errors}"


@pytest.fixture
def phone(browser):
    ctx, pg, errors = _new_page(browser, 360, 740)
    yield pg
    ctx.close()
    assert not errors, f"browser errors: {errors}"


def _engines(url: str) -> dict:
    import httpx
    return httpx.get(f"{url}/api/health").json()["engines"]


def _need_planner(url: str) -> None:
    e = _engines(url)
    if not (e["assess"] and e["plan"] and e["simulate"]):
        pytest.skip("the assessment, planner and simulator are not all in this build")


def _load_example(page, url: str, name: str) -> None:
    page.goto(url)
    page.select_option("#example", name)  # the page's script fills the form at once
    page.wait_for_selector("#example-note")


def _assess(page) -> None:
    page.click("#assess-button")
    page.wait_for_selector("#assessment, #input-errors")


def _axe(page) -> list[dict]:
    page.add_script_tag(url=AXE)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def _visible_text(page, selector: str = "body") -> str:
    page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
    return page.inner_text(selector)


def _shot(page, selector: str, path: Path, max_h: int = 2600) -> None:
    """A small PNG of an element (top max_h px), reduced to a 64-colour palette."""
    page.evaluate("() => window.scrollTo(0, 0)")
    box = page.locator(selector).bounding_box()
    page.screenshot(path=str(path), full_page=True, clip={"x": box["x"], "y": box["y"], "width": box["width"],
                                                          "height": min(box["height"], max_h)})
    from PIL import Image
    with Image.open(path) as im:
        im.convert("RGB").quantize(colors=64).save(path, optimize=True)


def _assert_clinical_language(text: str, where: str) -> None:
    assert not SNAKE.findall(text), f"{where}: code names {sorted(set(SNAKE.findall(text)))[:10]}"
    assert not CODE_DOTTED.findall(text), f"{where}: code names {CODE_DOTTED.findall(text)[:10]}"
    assert not PY_VALUES.findall(text), f"{where}: Python values {PY_VALUES.findall(text)[:10]}"
    assert not JSONISH.findall(text), f"{where}: raw JSON {JSONISH.findall(text)[:5]}"


# ------------------------------------------------------------------------------------------
# The form

def test_form_is_short_labelled_and_count_first(page, live_url, shots):
    page.goto(live_url)
    assert "does not replace clinical judgement" in page.text_content("header")
    # the count comes first and is open; the other sections are closed until needed
    first = page.locator("#case-form fieldset, #case-form details").first
    assert first.evaluate("e => e.classList.contains('count')")
    assert page.locator("#case-form details[open]").count() == 0
    assert page.locator("#lab_wbc").is_visible()
    assert page.locator("#lab_potassium").is_hidden()
    # unit pickers, not free text: conventional and SI units of each analyte, from the knowledge data
    assert page.locator("#case-form input.unit, input[name^=unit_][type=text]").count() == 0
    assert page.locator("#unit_wbc option").all_inner_texts() == ["×10⁹/L", "×10³/µL"]
    assert page.locator("#unit_creatinine option").all_text_contents() == ["µmol/L", "mg/dL"]
    # short: the form fits on a laptop screen, and few Tab stops lead to "Assess"
    assert page.locator("#case-form").bounding_box()["height"] < 1100
    stops = page.evaluate("""() => { const all = [...document.querySelectorAll('a[href], button, input, select, textarea, summary')]
        .filter(e => e.checkVisibility() && !e.disabled && e.type !== 'hidden');
        return all.indexOf(document.getElementById('assess-button')); }""")
    assert 0 < stops <= 20
    # every control has an accessible name (axe checks it too)
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(el => el.type !== 'hidden' && !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
        .map(el => el.name)""")
    assert unlabeled == []
    assert page.evaluate("() => [...document.scripts].every(s => !s.src || s.src.startsWith(location.origin))")
    _shot(page, "main", shots / "form.png")


def test_empty_form_asks_for_the_white_count_at_the_field(page, live_url):
    page.goto(live_url)
    _assess(page)
    assert page.locator("#assessment").count() == 0  # no ROUTINE result for an empty form
    err = page.locator("#err_lab_wbc")
    assert err.is_visible() and "white cell count" in err.inner_text().lower()
    assert page.get_attribute("#lab_wbc", "aria-invalid") == "true"
    assert "err_lab_wbc" in page.get_attribute("#lab_wbc", "aria-describedby")
    # the error sits next to its field, not thousands of pixels below
    gap = err.bounding_box()["y"] - page.locator("#lab_wbc").bounding_box()["y"]
    assert 0 < gap < 150


def test_bad_value_is_explained_in_plain_language_at_the_field(page, live_url):
    page.goto(live_url)
    page.fill("#lab_wbc", "250000")
    _assess(page)
    msg = page.inner_text("#err_lab_wbc")
    assert "250000" in msg and "White cell count" in msg
    _assert_clinical_language(msg, "error")
    assert "UCUM" not in msg
    page.fill("#lab_wbc", "12,5,0")
    _assess(page)
    assert "cannot be used" in page.inner_text("#err_lab_wbc")


def test_decimal_comma_is_accepted(page, live_url):
    if not _engines(live_url)["assess"]:
        pytest.skip("no assessment engine in this build")
    page.goto(live_url)
    page.fill("#lab_wbc", "150,5")
    page.fill("#lab_blasts_pct", "40")
    _assess(page)
    assert page.locator("#input-errors").count() == 0
    assert "WBC 150.5 ×10⁹/L" in page.inner_text("#assessment .meta")
    assert "absolute blasts 60.2 ×10⁹/L" in page.inner_text("#assessment .meta")
    # the state is kept in the URL (fragment: never sent to the server, so never logged)
    assert "#case=" in page.url
    url = page.url
    page.goto("about:blank")
    page.goto(url)
    assert page.input_value("#lab_wbc") == "150,5"
    assert page.input_value("#lab_blasts_pct") == "40"


def test_picking_an_example_fills_the_form_visibly(page, live_url):
    _load_example(page, live_url, "01-aml-leukostasis.yaml")
    assert page.input_value("#lab_wbc") == "250"
    assert page.input_value("#unit_wbc") == "10*3/uL"  # as the example gives it (K/uL)
    assert page.input_value("#weight_kg") == "70"
    assert page.locator("#sym_dyspnea_rest").is_checked()
    assert page.input_value("#known_diagnosis") == "AML"
    # the smear and all genetics are on the form now (issue 9 fields), filled from the example
    assert page.input_value("#smear_auer_rods") == "yes" and page.locator("#smear_auer_rods").is_visible()
    assert page.input_value("#flt3_itd") == "positive" and page.input_value("#bcr_abl1") == "negative"
    note = page.inner_text("#example-note")
    assert "time of the values: 2026-03-01" in note  # what the form cannot show is listed, in words
    assert "Auer rods" not in note  # ...and what it shows is not listed twice
    assert page.input_value("#hepatomegaly") == "no" and "hepatomegaly" not in note  # the examination is on the form
    _assert_clinical_language(note, "example note")


def test_typed_values_win_over_a_selected_example(page, live_url):
    if not _engines(live_url)["assess"]:
        pytest.skip("no assessment engine in this build")
    _load_example(page, live_url, "01-aml-leukostasis.yaml")
    page.fill("#lab_wbc", "180")
    page.select_option("#unit_wbc", "10*9/L")
    page.fill("#lab_blasts_pct", "50")
    page.fill("#case_id", "typed-patient")
    _assess(page)
    meta = page.inner_text("#assessment .meta")
    assert "WBC 180 ×10⁹/L" in meta and "absolute blasts 90 ×10⁹/L" in meta
    assert "typed-patient" in page.inner_text("#assessment h2")
    assert "250" not in page.inner_text("#assessment .headline")
    # the form still shows what was assessed
    assert page.input_value("#lab_wbc") == "180"
    # clearing a field of the example removes it (not silently kept from the example)
    summary = page.locator("#sec-chem > summary")
    assert "values entered" in summary.inner_text()  # after a result the sections fold, saying what they hold
    summary.click()
    page.fill("#lab_potassium", "")
    _assess(page)
    assert page.locator("section.finding[data-finding='artefact:PSEUDOHYPERKALEMIA_POSSIBLE']").count() == 0


# ------------------------------------------------------------------------------------------
# Results

def test_result_for_example_01_order_sheet_chart(page, live_url, shots):
    _need_planner(live_url)
    _load_example(page, live_url, "01-aml-leukostasis.yaml")
    _assess(page)
    assert page.locator(".headline").count() == 1
    badges = page.locator("#assessment section.finding h4 .badge").all_inner_texts()
    order = {"Act now": 0, "Attention": 1, "For information": 2}
    assert [order[b] for b in badges] == sorted(order[b] for b in badges)  # most urgent first
    # "Why?" is formatted working: labelled rows with thresholds, units, status and citations
    why = page.locator("section.finding[data-finding=hyperleukocytosis] details.why")
    why.locator("summary").click()
    text = why.inner_text()
    assert "threshold" in text and "×10⁹/L" in text and "status V" in text and "Ganzel" in text
    # unique accessible names for the "Why?" summaries
    names = page.locator("details.why > summary").all_inner_texts()
    assert len(names) == len(set(names))
    # doses worked out for the weight (70 kg)
    assert "0.2 mg/kg × 70 kg = 14 mg" in page.inner_text("ol.recs")
    # the order sheet as the CLI prints it, in labelled rows with units
    sheet = page.locator("#order-sheet")
    assert sheet.count() == 1 and "reference-only" not in sheet.get_attribute("class")
    rows = sheet.locator("table.sheet th[scope=row]").all_inner_texts()
    for label in ("Device and protocol", "Total blood volume (TBV)", "Volume to process", "Flows",
                  "Anticoagulant (ACD-A)", "Citrate dose", "Calcium prophylaxis", "Extracorporeal volume and prime",
                  "Duration", "Predicted WBC after the procedure", "Sessions to reach the target", "Vascular access"):
        assert label in rows, label
    sheet_text = sheet.inner_text()
    assert "Spectra Optia" in sheet_text and "mg/kg/min" in sheet_text and "'After' is the" in sheet_text
    assert sheet.locator("table.calcium tbody tr").count() >= 2
    assert sheet.locator("table.checklist tbody tr").count() >= 3
    assert "Prescriber" in sheet_text
    # chart: separate panels on one time axis in hours, thresholds from the knowledge data
    chart = page.locator("#sim-chart svg")
    assert chart.locator("g.panel").count() == 3
    svg = chart.inner_html()
    assert "hours from the start" in svg and "symptoms below 0.9 mmol/L" in svg and "procedure" in svg
    _shot(page, "#assessment", shots / "result-01.png")
    _shot(page, "#order-sheet", shots / "order-sheet.png", 4000)
    _shot(page, "#sim-chart", shots / "chart.png")
    _assert_clinical_language(_visible_text(page, "#assessment"), "example 01")


def test_no_order_sheet_for_a_leukemoid_reaction(page, live_url, shots):
    if not _engines(live_url)["assess"]:
        pytest.skip("no assessment engine in this build")
    _load_example(page, live_url, "06-leukemoid-reaction.yaml")
    _assess(page)
    assert page.locator("#order-sheet").count() == 0
    assert page.locator("#sim-chart").count() == 0
    assert "Not indicated" in page.inner_text("#lp-not-indicated")
    _shot(page, "#assessment", shots / "result-06.png")
    _shot(page, "#leukapheresis", shots / "result-06-leukapheresis-not-indicated.png")
    if not _engines(live_url)["plan"]:
        return
    page.click("#plan-anyway")
    page.wait_for_selector("#assessment")
    sheet = page.locator("#order-sheet")
    assert "reference-only" in sheet.get_attribute("class")
    assert "reference only" in page.inner_text("#order-sheet-title").lower()
    assert "FOR REFERENCE ONLY" in sheet.inner_text()
    assert "Prescriber" not in sheet.inner_text()  # nothing to sign
    assert "calcium" in sheet.locator("table.calcium caption").inner_text().lower()
    assert "reference only" in sheet.locator("table.calcium caption").inner_text().lower()
    if page.locator("#sim-chart").count():
        assert "reference" in page.inner_text("#sim-chart figcaption").lower()
    _shot(page, "#leukapheresis", shots / "result-06-reference-plan.png", 1400)


@pytest.mark.parametrize("example", ["02-apl-coagulopathy.yaml", "26-apl-suspected-before-pml-rara.yaml"])
def test_apl_never_gets_a_plan_not_even_for_reference(page, live_url, example):
    if not _engines(live_url)["assess"]:
        pytest.skip("no assessment engine in this build")
    _load_example(page, live_url, example)
    _assess(page)
    assert "APL" in page.inner_text("#plan-unavailable")
    assert page.locator("#order-sheet").count() == 0 and page.locator("#sim-chart").count() == 0
    assert page.locator("#plan-anyway").count() == 0
    assert page.locator("section.finding[data-finding=apl] .badge").inner_text() == "Act now"


@pytest.mark.parametrize("example", EXAMPLE_FILES)
def test_no_json_or_code_names_for_every_example(page, live_url, example):
    if not _engines(live_url)["assess"]:
        pytest.skip("no assessment engine in this build")
    _load_example(page, live_url, example)
    _assert_clinical_language(page.inner_text("#example-note"), f"{example} form")
    _assess(page)
    assert page.locator("#assessment").count() == 1, page.inner_text("#input-errors")
    _assert_clinical_language(_visible_text(page, "#result"), f"{example} result")
    if page.locator("#plan-anyway").count():
        page.click("#plan-anyway")
        page.wait_for_selector("#assessment")
        _assert_clinical_language(_visible_text(page, "#result"), f"{example} reference plan")
    # the printable report of the same case
    with page.context.expect_page() as new:
        page.click("#print-button")
    report = new.value
    report.wait_for_load_state()
    _assert_clinical_language(_visible_text(report), f"{example} report")
    assert "Signature" in report.inner_text("body")
    report.close()


def test_report_of_example_01_is_at_most_two_pages(page, live_url, shots):
    _need_planner(live_url)
    _load_example(page, live_url, "01-aml-leukostasis.yaml")
    _assess(page)
    form = page.evaluate("() => [...new FormData(document.getElementById('report-form'))]")
    data: dict[str, list[str]] = {}
    for k, v in form:
        data.setdefault(k, []).append(v)
    import httpx
    r = httpx.post(f"{live_url}/ui/report?format=pdf", data=data, timeout=120)
    if r.status_code == 503:
        pytest.skip("WeasyPrint (the 'pdf' extra) is not installed")
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    assert 1 <= int(r.headers["X-Report-Pages"]) <= 2
    # the browser's print of the printable report: also at most two A4 pages
    with page.context.expect_page() as new:
        page.click("#print-button")
    report = new.value
    report.wait_for_load_state()
    text = report.inner_text("body")
    for part in ("Values used", "Findings", "Differential diagnosis", "Leukapheresis", "ruleset",
                 "Not a medical device", "Signature", "Report made"):
        assert part in text, part
    assert report.locator("svg.course").count() == 1
    report.emulate_media(media="print")
    pdf = report.pdf(format="A4", print_background=False)
    assert 1 <= len(re.findall(rb"/Type\s*/Page\b", pdf)) <= 2
    report.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi, as printed
    _shot(report, "body", shots / "report.png", 2300)
    report.close()


# ------------------------------------------------------------------------------------------
# Small screens and accessibility

def test_360px_wide_without_sideways_scrolling(phone, live_url):
    phone.goto(live_url)
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 360
    if not _engines(live_url)["assess"]:
        return
    _load_example(phone, live_url, "01-aml-leukostasis.yaml")
    _assess(phone)
    _visible_text(phone)
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 360
    diff = phone.locator("table.differential").first
    if diff.count():
        assert diff.bounding_box()["width"] <= 360
    for width in (800, 1200):  # tablets and small laptops: no sideways scrolling either
        phone.set_viewport_size({"width": width, "height": 900})
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= width


def test_axe_core_finds_no_serious_or_critical_violations(page, live_url, shots):
    found = {}
    page.goto(live_url)
    found["form"] = _axe(page)
    _assess(page)  # the empty form's error state
    found["errors"] = _axe(page)
    if _engines(live_url)["assess"]:
        _load_example(page, live_url, "01-aml-leukostasis.yaml")
        _assess(page)
        page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
        found["result 01"] = _axe(page)
        _load_example(page, live_url, "06-leukemoid-reaction.yaml")
        _assess(page)
        if page.locator("#plan-anyway").count():
            page.click("#plan-anyway")
            page.wait_for_selector("#assessment")
        found["result 06 reference plan"] = _axe(page)
        with page.context.expect_page() as new:
            page.click("#print-button")
        report = new.value
        report.wait_for_load_state()
        found["report"] = _axe(report)
        report.close()
    (shots / "axe-result.txt").write_text("".join(f"{k}: {len(v)} serious or critical violations\n"
                                                  for k, v in found.items()), "utf-8")
    assert all(not v for v in found.values()), found


# ------------------------------------------------------------------------------------------
# The WHO/ICC 2022 fields of issue 9 on the form: the page's differential is the CLI's and the API's

# Written as a case document (what `leukos assess` and /api/assess read), then typed into the form.
CMML_CASE = {"format": "leukos-case/1", "id": "form-cmml",
             "labs": {"wbc": {"value": 112, "unit": "10*9/L"}, "blasts_pct": {"value": 2, "unit": "%"},
                      "hemoglobin": {"value": 9.6, "unit": "g/dL"}, "platelets": {"value": 64, "unit": "10*9/L"},
                      "neutrophils_pct": {"value": 58, "unit": "%"}, "monocytes_abs": {"value": 31, "unit": "10*9/L"}},
             "findings": {"genetics": {"bcr_abl1": "negative", "asxl1": "positive", "jak2": "negative"},
                          "smear": {"dysgranulopoiesis": True}, "marrow": {"blasts_pct": 6, "fibrosis_grade": 1}}}
PMF_CASE = {"format": "leukos-case/1", "id": "form-pmf",
            "labs": {"wbc": {"value": 104, "unit": "10*9/L"}, "blasts_pct": {"value": 3, "unit": "%"},
                     "hemoglobin": {"value": 8.9, "unit": "g/dL"}, "monocytes_abs": {"value": 1200, "unit": "10*6/L"}},
            "findings": {"genetics": {"bcr_abl1": "negative", "jak2": "positive"},
                         "smear": {"teardrop_cells": True, "leukoerythroblastosis": True, "dysgranulopoiesis": False},
                         "marrow": {"blasts_pct": 3, "fibrosis_grade": 3}}}


def _type_case(page, doc: dict) -> None:
    """Type a case document into the form as a clinician would: open the sections, fill, pick."""
    for sec in ("#sec-cbc", "#sec-diagnosis", "#sec-morphology"):
        if page.locator(f"{sec}[open]").count() == 0:
            page.click(f"{sec} > summary")
    page.fill("#case_id", doc["id"])
    for name, lv in doc["labs"].items():
        unit = lv["unit"]
        if unit == "10*6/L":  # the document gives 1200 ×10⁶/L; the form offers ×10³/µL, so 1.2 is typed
            unit, value = "10*3/uL", lv["value"] / 1000
        else:
            value = lv["value"]
        page.fill(f"#lab_{name}", str(value))
        if page.locator(f"select#unit_{name}").count():
            page.select_option(f"#unit_{name}", unit)
    for gene, result in doc["findings"].get("genetics", {}).items():
        page.select_option(f"#{gene}", result)
    for key, seen in doc["findings"].get("smear", {}).items():
        page.select_option(f"#smear_{key}", "yes" if seen else "no")
    marrow = doc["findings"].get("marrow", {})
    if "blasts_pct" in marrow:
        page.fill("#marrow_blasts_pct", str(marrow["blasts_pct"]))
    if "fibrosis_grade" in marrow:
        page.select_option("#marrow_fibrosis_grade", str(marrow["fibrosis_grade"]))


def _items(tr, label: str) -> int:
    texts = tr.locator(f"td[data-label={label}] li").all_inner_texts()
    return 0 if texts == ["none found"] else len(texts)


def _page_differential(page) -> list[tuple[str, str, int, int]]:
    """(diagnosis, likelihood, reasons for, reasons against) of each row of the page's differential."""
    return [(tr.get_attribute("data-diagnosis"), tr.locator("td[data-label=Likelihood]").inner_text().split("\n")[0].strip(),
             _items(tr, "For"), _items(tr, "Against")) for tr in page.locator("table.differential tbody tr").all()]


@pytest.mark.parametrize(("doc", "leading"), [(CMML_CASE, "CMML"), (PMF_CASE, "OTHER_MPN")], ids=["cmml", "pmf"])
def test_who_icc_fields_typed_on_the_form_give_the_differential_of_assess(page, live_url, doc, leading):
    if not _engines(live_url)["assess"]:
        pytest.skip("no assessment engine in this build")
    import copy

    from leukos.interop.case_format import case_from_dict
    from leukos.knowledge import load_knowledge
    from leukos.rules import assess

    kb = load_knowledge()
    page.goto(live_url)
    page.click("#sec-patient > summary")
    _type_case(page, doc)
    _assess(page)
    assert page.locator("#input-errors").count() == 0
    shown = _page_differential(page)
    a = assess(case_from_dict(copy.deepcopy(doc), kb), kb)
    expected = [(d.code, d.likelihood, len(d.supporting), len(d.against)) for d in a.differential]
    assert shown == expected  # the same diagnoses, order, likelihoods and reasons as the CLI and the API
    assert shown[0][:2] == (leading, "high")
    # the typed findings decided it: without them the same counts give another differential
    bare = copy.deepcopy(doc)
    bare["findings"], _ = {}, bare["labs"].pop("monocytes_abs")
    assert [d.code for d in assess(case_from_dict(bare, kb), kb).differential][0] != leading
    # the form still shows what was assessed, and the link of the page brings the values back
    fibrosis = str(doc["findings"]["marrow"]["fibrosis_grade"])
    assert page.input_value("#marrow_fibrosis_grade") == fibrosis
    url = page.url
    page.goto("about:blank")
    page.goto(url)
    assert page.input_value("#marrow_fibrosis_grade") == fibrosis
    assert page.input_value("#jak2") == doc["findings"]["genetics"]["jak2"]
    assert page.locator("#lab_monocytes_abs").is_visible()
    _assert_clinical_language(_visible_text(page, "#result"), f"{doc['id']} result")


def test_an_invalid_marrow_value_is_refused_at_its_field_with_the_case_models_reason(page, live_url):
    from leukos.errors import LeukosUserError
    from leukos.interop.case_format import case_from_dict
    from leukos.knowledge import load_knowledge

    page.goto(live_url)
    page.fill("#lab_wbc", "112")
    page.click("#sec-morphology > summary")
    page.fill("#marrow_blasts_pct", "120")
    _assess(page)
    assert page.locator("#assessment").count() == 0
    assert page.locator("#sec-morphology[open]").count() == 1  # the section with the error is open
    err = page.locator("#err_marrow_blasts_pct")
    assert err.is_visible()
    msg = err.inner_text()
    # the case model's own reason (the CLI and the API give it for the same document), in words
    with pytest.raises(LeukosUserError) as exc:
        case_from_dict({"labs": {"wbc": 112}, "findings": {"marrow": {"blasts_pct": 120}}}, load_knowledge())
    (detail,) = exc.value.details
    assert detail.field == "findings.marrow.blasts_pct" and detail.value == 120
    assert "Blasts in the marrow aspirate" in msg and "“120”" in msg and "at most 100" in msg
    _assert_clinical_language(msg, "marrow error")
    assert page.get_attribute("#marrow_blasts_pct", "aria-invalid") == "true"
    assert "err_marrow_blasts_pct" in page.get_attribute("#marrow_blasts_pct", "aria-describedby")
    gap = err.bounding_box()["y"] - page.locator("#marrow_blasts_pct").bounding_box()["y"]
    assert 0 < gap < 150
    # the summary at the top links to the field
    assert page.locator("#input-errors a[href='#marrow_blasts_pct']").count() == 1
    assert _axe(page) == []
    # a count in the wrong range is refused the same way, beside its own field
    page.fill("#marrow_blasts_pct", "6")
    page.click("#sec-cbc > summary")
    page.fill("#lab_monocytes_abs", "-4")
    _assess(page)
    assert page.locator("#err_marrow_blasts_pct").count() == 0
    assert "Monocytes, absolute count" in page.inner_text("#err_lab_monocytes_abs")


def test_new_sections_fit_a_laptop_screen_and_pass_axe(browser, live_url):
    ctx, pg, errors = _new_page(browser, 1366, 768)
    try:
        pg.goto(f"{live_url}/?example=22-chronic-neutrophilic-leukaemia.yaml")
        pg.evaluate("() => document.querySelectorAll('#case-form details').forEach(d => d.open = true)")
        assert pg.evaluate("() => document.documentElement.scrollWidth") <= 1366
        # the lists sit side by side (several to a row), each with its label and no sideways scrolling
        ys = {round(pg.locator(f"#{g}").bounding_box()["y"]) for g in ("bcr_abl1", "pml_rara", "csf3r")}
        assert len(ys) == 1
        assert pg.input_value("#csf3r") == "positive" and pg.input_value("#marrow_blasts_pct") == "2"
        for legend in ("Molecular genetics", "Blood smear", "Bone marrow", "Differential, absolute counts"):
            assert pg.locator("#case-form fieldset legend", has_text=legend).count() == 1, legend
        hint = pg.inner_text("#hint_marrow_blasts_pct")
        assert "0 to 100" in hint
        assert pg.locator("#marrow_fibrosis_grade option").all_inner_texts() == [
            "not recorded", "grade 0 (MF-0)", "grade 1 (MF-1)", "grade 2 (MF-2)", "grade 3 (MF-3)"]
        assert pg.locator("#unit_monocytes_abs option").all_inner_texts() == ["×10⁹/L", "×10³/µL"]
        assert _axe(pg) == []
    finally:
        ctx.close()
    assert not errors, f"browser errors: {errors}"
