"""Registry pages: ward list, patient timeline, the nurse's procedure form (server-rendered; and in
Debian's chromium for the chart and the form)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from leukos.registry import RegistrySettings
from leukos.service.app import create_app
from leukos.service.settings import ServiceSettings
from tests.conftest import EXAMPLES
from tests.service.conftest import Client

from .records import PATIENT, procedure

FORM = {"started_at": "2026-12-01T08:00", "ended_at": "2026-12-01T11:00", "device": "spectra_optia_wbcd",
        "access": "femoral", "volume_processed_l": "9,6", "anticoagulant": "acd_a", "inlet_ac_ratio": "12",
        "calcium_given_mmol": "9", "calcium_route": "iv", "pre_wbc_value": "250", "pre_wbc_at": "2026-12-01T07:30",
        "post_wbc_value": "190", "post_wbc_at": "2026-12-01T11:10", "ica_value": "1.0", "ica_at": "2026-12-01T09:30",
        "ae_type": "paraesthesia", "ae_scale": "WAA", "ae_severity": "mild", "recorded_by": "Nurse B"}


@pytest.fixture
def client(tmp_path) -> Client:
    app = create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES, audit_log_path=tmp_path / "a.jsonl"))
    app.state.registry_settings = RegistrySettings(data_dir=tmp_path / "data")
    c = Client(app)
    c.post("/api/patients", json=PATIENT)
    return c


def _visible(html: str) -> str:
    """The text a clinician reads in the page's main part (no scripts, no chart, no tags, no attributes)."""
    main = html.split('<main id="main"', 1)[1].split("</main>", 1)[0]
    main = re.sub(r"<script.*?</script>|<svg.*?</svg>", "", main, flags=re.S)
    return re.sub(r"<[^>]+>", " ", main)


def test_ward_list_page(client):
    html = client.get("/ui/patients").text
    assert "LK-0001" in html and "Latest white cell count" in html and "not recorded" in html
    assert "MRN-7734129" not in html


def test_nurse_form_saves_and_timeline_shows_the_session(client):
    client.post("/api/patients/LK-0001/treatments", json={"agent": "hydroxyurea", "dose": "2 g twice daily",
                                                          "started_at": "2026-12-01T12:00:00Z", "recorded_by": "Dr C"})
    r = client.post("/ui/patients/LK-0001/procedures", data=FORM)
    assert r.status_code == 303 and r.headers["location"] == "/ui/patients/LK-0001"
    html = client.get("/ui/patients/LK-0001").text
    text = _visible(html)
    assert "Femoral catheter" in text and "9.6 L" in text and "Perioral or digital tingling" in text and "(WAA scale)" in text
    assert "250 ×10⁹/L" in text and "190 ×10⁹/L" in text and "24 %" in text  # observed fall 250 -> 190
    # one session, hatched in each panel that has data (white cells, ionised calcium; no platelets entered)
    assert "<svg" in html and html.count('class="session"') == 2 and html.count('class="cytoreduction"') == 2
    assert "Hydroxyurea (2 g twice daily)" in text
    for raw in ("{'", '{"', "None", "spectra_optia_wbcd", "acd_a", "10*9/L"):
        assert raw not in text, raw


def test_nurse_form_errors_name_the_field_and_save_nothing(client):
    bad = FORM | {"volume_processed_l": "900", "post_wbc_at": "2026-12-01T07:00", "pre_wbc_value": "two hundred"}
    r = client.post("/ui/patients/LK-0001/procedures", data=bad)
    assert r.status_code == 422
    assert "Nothing was saved" in r.text and "pre_wbc_value" in r.text
    r = client.post("/ui/patients/LK-0001/procedures", data=bad | {"pre_wbc_value": "250"})
    assert r.status_code == 422 and "volume_processed_l" in r.text and "post_wbc.taken_at" in r.text
    assert 'value="900"' in r.text  # the nurse's entries are kept
    assert client.get("/api/patients/LK-0001").json()["procedures"] == []


@pytest.mark.browser
def test_timeline_chart_and_form_in_chromium(tmp_path):
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("Debian chromium is missing: run scripts/system-deps/chromium.sh (make install does)")
    from playwright.sync_api import sync_playwright

    from tests.service.live import serve

    old = os.environ.get("LEUKOS_DATA_DIR")
    os.environ["LEUKOS_DATA_DIR"] = str(tmp_path / "data")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    try:
        with serve(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES, audit_log_path=tmp_path / "a.jsonl")) as url, \
                sync_playwright() as p:
            import httpx

            httpx.post(f"{url}/api/patients", json=PATIENT)
            httpx.post(f"{url}/api/patients/LK-0001/procedures", json=procedure(), timeout=30)
            b = p.chromium.launch(executable_path=chromium, headless=True,
                                  args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = b.new_page(viewport={"width": 1280, "height": 1600})
            page.goto(f"{url}/ui/patients")
            page.click("text=LK-0001")
            page.wait_for_selector("#course-chart svg .session", timeout=15000)
            page.click("text=Record a procedure")
            for name, value in FORM.items():
                if name in ("device", "access", "anticoagulant", "calcium_route", "ae_type", "ae_scale", "ae_severity"):
                    page.select_option(f"[name={name}]", value)
                else:
                    page.fill(f"[name={name}]", value.replace("2026-12-01", "2026-12-02"))
            page.click("text=Save the procedure")
            page.wait_for_url(f"{url}/ui/patients/LK-0001")
            rows = page.locator("#predicted-vs-observed tbody tr")
            assert rows.count() == 2
            assert "24 %" in rows.nth(1).inner_text()
            b.close()
    finally:
        if old is None:
            os.environ.pop("LEUKOS_DATA_DIR", None)
        else:
            os.environ["LEUKOS_DATA_DIR"] = old


def test_form_times_in_the_browsers_zone_are_stored_in_utc(client):
    r = client.post("/ui/patients/LK-0001/procedures", data=FORM | {"utc_offset_min": "60"})
    assert r.status_code == 303
    x = client.get("/api/patients/LK-0001").json()["procedures"][0]
    assert x["started_at"].startswith("2026-12-01T07:00") and x["pre_wbc"]["taken_at"].startswith("2026-12-01T06:30")
    r = client.post("/ui/patients/LK-0001/procedures", data=FORM | {"utc_offset_min": "9999"})
    assert r.status_code == 422 and "utc_offset_min" in r.text


@pytest.mark.parametrize("days_after", [0.25, 2])
def test_timeline_flags_render_with_their_references(client, days_after):
    """The flags block, at a fixed time: before the next daily session is due there is no such flag;
    after, "Next session due" with its references as every page writes them (author and year; the
    knowledge base's own choices in words, never its file). The page once failed with a 500 as soon
    as the wall clock passed the due time, because the references were called, not read."""
    import datetime as dt

    from leukos.service.registry_api import registry_of

    from .records import T0

    client.post("/api/patients/LK-0001/procedures", json=procedure())
    registry_of(client.app).clock = lambda: T0 + dt.timedelta(days=days_after)
    r = client.get("/ui/patients/LK-0001")
    assert r.status_code == 200
    text = re.sub(r"\s+", " ", _visible(r.text))
    if days_after < 1:
        assert "Next session due" not in text
    else:
        assert "Next session due" in text
        refs = text.split("Next session due", 1)[1].split("References:", 1)[1][:200]
        assert "Schwartz J 2013" in refs and "Connelly-Smith L 2023" in refs
        assert "knowledge base" not in refs and "leukos_" not in refs
