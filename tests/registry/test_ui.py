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


def _errors(html: str) -> str:
    """The error list of a form or error page, as read (tags gone, spaces collapsed)."""
    block = re.search(r'<article class="errors"[^>]*>(.*?)</article>', html, re.S)
    assert block, "no error list on the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", block.group(1))).replace(" :", ":").strip()


# what a clinician must never read: code names (snake_case keys, paths), pydantic's words, Python values
CODE = re.compile(r"\b[a-z]+_[a-z0-9_]+\b|\w\.\d+\.\w|\[\d+\]|Input should|correct this field|\bNone\b|\bTrue\b|"
                  r"\bFalse\b|-?\d+\.0\b|10\*9")


def test_nurse_form_errors_name_the_field_and_save_nothing(client):
    """Errors name the field by the form's label (they once read pre_wbc_value, volume_processed_l,
    post_wbc.taken_at: the registry's keys)."""
    bad = FORM | {"volume_processed_l": "900", "post_wbc_at": "2026-12-01T07:00", "pre_wbc_value": "two hundred"}
    r = client.post("/ui/patients/LK-0001/procedures", data=bad)
    assert r.status_code == 422
    errors = _errors(r.text)
    assert "Nothing was saved" in r.text and "White cells before: a number for White cells before (entered: two hundred)" in errors
    r = client.post("/ui/patients/LK-0001/procedures", data=bad | {"pre_wbc_value": "250"})
    errors = _errors(r.text)
    assert r.status_code == 422 and "Whole blood processed (L): ≥ 0.1 and ≤ 50 L" in errors and "(entered: 900)" in errors
    assert "White cells after: taken at: after the pre-session count's time (01 Dec 2026 07:30) (entered: 2026-12-01 07:00)" \
        in errors.replace("&#39;", "'")
    assert not CODE.search(errors), CODE.search(errors)
    assert 'value="900"' in r.text  # the nurse's entries are kept
    assert client.get("/api/patients/LK-0001").json()["procedures"] == []


@pytest.mark.parametrize(("field", "typed", "says"), [
    ("ac_volume_ml", "1,200", "Anticoagulant used (mL): a number for Anticoagulant used (mL) that cannot be misread "
                              "(entered: 1,200). A comma before three digits may be a thousands separator: write 1200 or 1.2"),
    ("pre_platelets_value", "150,000", "Platelets before: a number for Platelets before that cannot be misread "
                                       "(entered: 150,000)"),
    ("ac_volume_ml", "1_000", "Anticoagulant used (mL): a number for Anticoagulant used (mL) (entered: 1_000)"),
    ("pre_wbc_value", "9" * 400, "White cells before: a number for White cells before"),
])
def test_form_numbers_are_read_as_the_assessment_form_reads_them(client, field, typed, says):
    """1,200 mL of anticoagulant was stored as 1.2 mL, 150,000 platelets as 150, and 1_000 as 1000: the
    form now reads numbers by the assessment form's rule (a comma before three digits is asked about)."""
    data = FORM | {field: typed, "pre_platelets_at": "2026-12-01T07:30"}
    r = client.post("/ui/patients/LK-0001/procedures", data=data)
    assert r.status_code == 422, client.get("/api/patients/LK-0001").json()["procedures"]
    assert says in _errors(r.text)
    assert client.get("/api/patients/LK-0001").json()["procedures"] == []


@pytest.mark.parametrize(("over", "says", "not_said"), [
    ({"volume_processed_l": ""}, "Whole blood processed (L): an entry: this field is required. Fill in ‘Whole blood processed (L)’.", ""),
    ({"run_time_min": "-1"}, "Run time (min): &gt; 0 and ≤ 480 min (device maximum) (entered: -1).", ""),
    ({"access": "nope"}, "Vascular access: one of: Peripheral veins, Central catheter, jugular vein", ""),
    ({"ae_scale": "XYZ"}, "Scale: one of: WAA (mild / moderate / severe), CTCAE grade (entered: XYZ)", ""),
    ({"ae_scale": "CTCAE", "ae_severity": "mild"}, "Severity: a severity on the CTCAE grade scale, one of: Grade 1 (mild)", ""),
    ({"recorded_by": "A" * 100}, "Recorded by: at most 64 characters (100 typed)", "String should"),
    ({"pre_wbc_value": "-5"}, "White cells before: white cell count between 0 and 2000 ×10⁹/L", ""),
    ({"notes": "a\x00b"}, "Notes: text without hidden control characters", ""),
    ({"started_at": "0001-01-01T08:00"}, "Start and End: a run time &gt; 0 and ≤ 480 min (device maximum); these times "
                                         "make a run of 1065528180 min (entered: 0001-01-01 08:00 to 2026-12-01 11:00)",
     "Run time"),
    ({"ica_value": "", "ica_at": "2026-12-01T09:30"}, "Ionised calcium during the run: the result, since its time is given", ""),
    ({"calcium_route": ""}, "Calcium route: the route of the calcium given: one of: Intravenous, Oral, Into the return line", ""),
])
def test_form_errors_are_in_the_forms_words(client, over, says, not_said):
    """Each refusal names the field as the form labels it, the value as typed, choices by their labels
    (they read 'volume_processed_l : Field required', 'adverse_events.0.scale : Input should be 'WAA' or
    'CTCAE'', '(entered: -1.0)', 'one of peripheral, cvc_jugular, ...', the canonical unit 10*9/L, an
    empty field name for a NUL in the notes, and blamed the run time for a start in year 1)."""
    r = client.post("/ui/patients/LK-0001/procedures", data=FORM | over)
    assert r.status_code == 422
    errors = _errors(r.text)
    assert says in errors
    assert not CODE.search(errors), CODE.search(errors)
    assert not not_said or not_said not in errors
    assert "<strong> </strong>" not in r.text and "<strong></strong>" not in r.text


def test_a_stored_white_cell_count_of_0_does_not_stop_the_page(client):
    """A saved pre- or post-session count of 0 (or 1e-400) made the timeline answer 422 JSON ('The next
    session cannot be predicted') for good. The page shows the course and says why nothing was predicted."""
    from sqlalchemy import update

    from leukos.registry.models import LabResult
    from leukos.service.registry_api import registry_of

    assert client.post("/ui/patients/LK-0001/procedures", data=FORM).status_code == 303
    with registry_of(client.app).engine.begin() as c:  # as stored before any check at input refused it
        c.execute(update(LabResult).where(LabResult.role == "pre", LabResult.analyte == "wbc").values(value=0.0))
    r = client.get("/ui/patients/LK-0001")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    text = re.sub(r"\s+", " ", _visible(r.text))
    assert "The next session could not be predicted" in text
    assert "could not be computed: a white cell count that a fall is predicted from is 0 ×10⁹/L, and the model needs " \
           "more than 0" in text
    assert "Femoral catheter" in text and "Needs attention" in text  # the rest of the course is still there
    assert not CODE.search(text.split("Recent laboratory results")[0]), CODE.search(text)
    # the API's follow-up (and so the CDS follow-up card) says the same, instead of a 422 for good
    f = client.get("/api/patients/LK-0001/follow-up")
    assert f.status_code == 200, f.text[:300]
    assert any("a white cell count that a fall is predicted from is 0 ×10⁹/L" in n for n in f.json()["not_assessed"])


@pytest.mark.parametrize(("method", "url", "status", "says"), [
    ("GET", "/ui/patients/NOPE", 404, "Patient: the pseudonym of a patient registered for follow-up (entered: NOPE)"),
    ("GET", "/ui/patients/NOPE/procedures/new", 404, "(entered: NOPE)"),
    ("POST", "/ui/patients/NOPE/procedures", 404, "(entered: NOPE)"),
    ("GET", "/ui/patients?page=0", 422, "Page: a page number from 1 to 1,000,000 (entered: 0)"),
    ("GET", "/ui/patients?page=abc", 422, "Page: a page number from 1 to 1,000,000 (entered: abc)"),
    ("GET", "/ui/patients?ward=" + "x" * 65, 422, "Ward: a ward name of at most 64 characters"),
])
def test_registry_pages_answer_errors_as_pages(client, method, url, status, says):
    """An unknown patient and a bad page number were answered with the API's JSON on the nurses' pages."""
    r = client.request(method, url, data=FORM if method == "POST" else None)
    assert r.status_code == status and r.headers["content-type"].startswith("text/html")
    assert says in _errors(r.text)
    assert '<a href="/ui/patients">Back to the ward list</a>' in r.text and '<main id="main"' in r.text


def test_adverse_events_are_recorded_only_when_answered(client):
    """The adverse-event choice defaulted to 'none', so an untouched form recorded 'Adverse events none'.
    It now starts unanswered; 'No adverse event' is a choice of its own."""
    html = client.get("/ui/patients/LK-0001/procedures/new").text
    select = html.split('name="ae_type"', 1)[1].split("</select>", 1)[0]
    assert re.search(r'<option value="" selected>not recorded', select) and ">No adverse event</option>" in select
    r = client.post("/ui/patients/LK-0001/procedures", data={k: v for k, v in FORM.items() if not k.startswith("ae_")})
    assert r.status_code == 422
    assert "Adverse event: an answer: No adverse event, or the event that occurred" in _errors(r.text)
    assert client.get("/api/patients/LK-0001").json()["procedures"] == []
    r = client.post("/ui/patients/LK-0001/procedures", data=FORM | {"ae_type": "none", "ae_severity": ""})
    assert r.status_code == 303
    assert client.get("/api/patients/LK-0001").json()["procedures"][0]["adverse_events"] == []


def test_interruptions_need_the_box_ticked_and_any_tick_counts(client):
    """Interruptions typed with the box unticked were shown as 'Interrupted'; a tick sent as 'yes' was ignored."""
    r = client.post("/ui/patients/LK-0001/procedures", data=FORM | {"interruptions": "line occluded 5 min"})
    assert r.status_code == 422
    assert "Tick ‘The run was interrupted’, or clear ‘Interruptions (what, how long)’" in _errors(r.text)
    assert client.post("/ui/patients/LK-0001/procedures", data=FORM | {"interrupted": "yes"}).status_code == 303
    assert client.get("/api/patients/LK-0001").json()["procedures"][0]["interrupted"] is True


def test_missing_is_said_as_missing(client):
    """'No session recorded.' beside a recorded session (weight missing), 'not recorded ×10⁹/L', and
    'No patients registered yet' for a ward filter that matches no one."""
    client.post("/api/patients", json={"pseudonym": "LK-0003", "mrn": "M3", "sex": "female"})
    data = {k: v for k, v in FORM.items() if not k.startswith(("pre_wbc", "post_wbc"))}
    assert client.post("/ui/patients/LK-0003/procedures", data=data).status_code == 303
    text = re.sub(r"\s+", " ", _visible(client.get("/ui/patients/LK-0003").text))
    pva = text.split("Predicted and observed fall per session", 1)[1].split("Procedures", 1)[0]
    assert "No session recorded" not in pva and "Not computed for the 1 recorded session(s)" in pva
    assert "weight" in pva.lower()
    assert "white cells not recorded → not recorded;" in text and "not recorded ×10⁹/L" not in text
    ward = re.sub(r"\s+", " ", _visible(client.get("/ui/patients?ward=NOWARD").text))
    assert "No patients registered yet" not in ward and "No active patient on ward NOWARD" in ward


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


def test_the_same_form_sent_twice_is_refused_on_the_form_in_words(client):
    assert client.post("/ui/patients/LK-0001/procedures", data=FORM).status_code == 303
    r = client.post("/ui/patients/LK-0001/procedures", data=FORM)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")  # the form, to correct
    said = _errors(r.text)
    assert "already recorded from 2026-12-01" in said and "correct the record" in said
    assert not CODE.search(said), CODE.search(said)


def test_a_time_that_names_its_own_offset_keeps_it(client):
    """08:00+05:00 was stored as 08:00 in the form's zone (the offset silently replaced)."""
    form = FORM | {k: v + "+05:00" for k, v in FORM.items() if k in ("started_at", "ended_at") or k.endswith("_at")}
    form["utc_offset_min"] = "0"
    assert client.post("/ui/patients/LK-0001/procedures", data=form).status_code == 303
    x = client.get("/api/patients/LK-0001").json()["procedures"][0]
    assert x["started_at"].startswith("2026-12-01T03:00") and x["ended_at"].startswith("2026-12-01T06:00")


@pytest.mark.parametrize("raw_name, body", [
    ("recorded_by", b"recorded_by=Nurse%20%FFB"),  # a percent-escape that is not UTF-8: was stored as "Nurse �B"
    ("recorded_by", b"recorded_by=Nurse \xffB"),  # a raw byte that is not UTF-8: was stored as "Nurse ÿB"
])
def test_a_form_value_that_is_not_utf8_is_refused_not_stored_as_a_guess(client, raw_name, body):
    from urllib.parse import urlencode

    rest = urlencode({k: v for k, v in FORM.items() if k != raw_name}).encode()
    r = client.post("/ui/patients/LK-0001/procedures", content=rest + b"&" + body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422
    errors = _errors(r.text)
    assert "Recorded by" in errors and "readable text (UTF-8)" in errors and raw_name not in errors
    assert client.get("/api/patients/LK-0001").json()["procedures"] == []


def test_a_multipart_form_value_that_is_not_utf8_is_refused(client):
    parts = b"".join(b'--xx\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (k.encode(), v.encode())
                     for k, v in FORM.items() if k != "recorded_by")
    body = parts + b'--xx\r\nContent-Disposition: form-data; name="recorded_by"\r\n\r\nNurse \xffB\r\n--xx--\r\n'
    r = client.post("/ui/patients/LK-0001/procedures", content=body,
                    headers={"Content-Type": "multipart/form-data; boundary=xx"})
    assert r.status_code == 422 and "Recorded by" in _errors(r.text)
    assert client.get("/api/patients/LK-0001").json()["procedures"] == []
