"""The web UI in a real browser: Debian's chromium driven by Playwright (never Playwright's own browser download).

Fills the case form, reads the assessment, opens the 'why', renders the chart when the simulator
is in the build, and saves a screenshot under artefacts/screenshots/ (gitignored).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from leukos.service.settings import ServiceSettings

from .conftest import EXAMPLES, REPO
from .live import serve

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = REPO / "artefacts" / "screenshots"


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


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 1800})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # Chromium logs every 4xx as a console error; a 422 for bad input is the designed answer.
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and "status of 422" not in m.text else None)
    yield pg
    ctx.close()
    assert not errors, f"browser errors: {errors}"


def _engine_in_build(url: str) -> dict:
    import httpx
    return httpx.get(f"{url}/api/health").json()["engines"]


def test_page_has_disclaimer_and_labels(page, live_url):
    page.goto(live_url)
    assert "does not replace clinical judgement" in page.text_content("header")
    assert "not a medical device" in page.text_content("footer").lower()
    # every visible form control has a label (accessibility)
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(el => el.type !== 'hidden' && !(el.labels && el.labels.length)).map(el => el.name)""")
    assert unlabeled == []
    assert page.evaluate("() => [...document.scripts].every(s => !s.src || s.src.startsWith(location.origin))")
    assert page.evaluate("() => [...document.querySelectorAll('link[rel=stylesheet]')].every("
                         "l => l.href.startsWith(location.origin))")


def test_bad_value_shows_the_fix(page, live_url):
    page.goto(live_url)
    page.fill("#lab_wbc", "250000")
    page.click("#assess-button")
    page.wait_for_selector("#input-errors")
    text = page.text_content("#input-errors")
    assert "labs.wbc" in text and "Fix" in text


def test_fill_form_assess_why_chart_screenshot(page, live_url):
    engines = _engine_in_build(live_url)
    if not engines["assess"]:
        pytest.skip("leukos.rules.assess is not in this build yet")
    page.goto(live_url)
    page.fill("#case_id", "browser-test-aml")
    page.fill("#age_years", "54")
    page.select_option("#sex", "female")
    page.fill("#weight_kg", "70")
    page.fill("#height_cm", "165")
    page.fill("#lab_wbc", "250")
    page.fill("#unit_wbc", "K/uL")
    page.fill("#lab_blasts_pct", "80")
    page.fill("#lab_hemoglobin", "7.7")
    page.fill("#lab_platelets", "28")
    page.fill("#lab_potassium", "5.1")
    page.check("#sym_dyspnea_rest")
    page.check("#sym_headache")
    page.select_option("#known_diagnosis", "AML")
    page.focus("#assess-button")
    page.keyboard.press("Enter")  # keyboard works
    page.wait_for_selector("#assessment")
    headline = page.text_content(".headline")
    assert headline and "browser-test-aml" in page.text_content("#assessment h2")
    first = page.locator("section.finding").first
    assert first.get_attribute("class").split()[-1] in ("critical", "warning")
    why = first.locator("details.why")
    why.locator("summary").click()
    assert why.evaluate("d => d.open")
    assert "wbc" in why.locator("pre.working").text_content().lower()
    assert why.locator("ol.refs li").count() >= 1
    assert page.locator("#card-preview .cds-card").count() >= 1
    assert page.locator("#pdf-button").count() == 1
    if engines["simulate"] and engines["plan"]:
        page.wait_for_selector("#sim-chart[data-rendered=true] svg")
        assert page.locator("#order-sheet").count() == 1
        assert page.locator("#sim-chart .scatterlayer .trace").count() >= 3  # WBC, platelets, iCa
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#sim-chart").screenshot(path=str(SHOTS / "ui-chart.png"))
    else:
        assert "not available" in page.text_content("#plan-unavailable")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "ui-page-full.png"), full_page=True)
    page.locator("#assessment").screenshot(path=str(SHOTS / "ui-assessment.png"))
    page.emulate_media(media="print")
    assert not page.locator("#case-form").is_visible()  # the print stylesheet hides the form


def test_pick_an_example(page, live_url):
    if not _engine_in_build(live_url)["assess"]:
        pytest.skip("leukos.rules.assess is not in this build yet")
    page.goto(live_url)
    page.locator("details").first.locator("summary").click()  # close the value entry
    page.select_option("#example", "02-apl-coagulopathy.yaml")
    page.click("#assess-button")
    page.wait_for_selector("#assessment")
    assert page.locator("section.finding[data-finding=apl]").count() == 1
