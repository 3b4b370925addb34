"""Web pages of the follow-up registry: ward list, patient timeline, procedure-record form.

Server-rendered (own templates ``registry_*.html`` extending ``base.html``); the count chart is
drawn by ``static/registry.js`` from JSON embedded in the page (no inline script: the CSP allows
only 'self'). Clinical labels come from the knowledge base's vocabulary; no raw JSON is shown.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from leukos import __version__
from leukos.domain.assessment import DISCLAIMER
from leukos.errors import ErrorDetail, LeukosUserError
from leukos.registry.errors import UnknownRecordError
from leukos.registry.inputs import ProcedureIn, parse, vocabulary
from leukos.service.deps import api_caller, service_state
from leukos.service.form_text import read_form
from leukos.service.registry_api import caller_actor, registry_of
from leukos.service.ui import _not_a_number, cites_filter, compile_pages, parse_number

__all__ = ["router", "procedure_from_form", "warm_up"]

router = APIRouter(include_in_schema=False)
_T = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
_T.env.globals.update(version=__version__, disclaimer=DISCLAIMER)


PAGES = ("registry_ward.html", "registry_patient.html", "registry_procedure_form.html", "registry_error.html")


def warm_up() -> None:
    """What the first registry page after start-up would build: its templates, compiled."""
    compile_pages(_T, PAGES)


def _when(t: Any) -> str:
    if isinstance(t, str):
        t = dt.datetime.fromisoformat(t)
    return t.astimezone(dt.UTC).strftime("%d %b %Y %H:%M UTC") if isinstance(t, dt.datetime) else "—"


def _num(v: Any, digits: int = 1) -> str:
    if v is None:
        return "—"
    if not isinstance(v, float):
        return str(v)
    text = f"{v:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text and digits == 1 else text


def _span(start: Any, end: Any) -> str:
    """A run as '01 Dec 2026, 08:00–11:00 UTC' (the end date only when it differs)."""
    a, b = (dt.datetime.fromisoformat(x) if isinstance(x, str) else x for x in (start, end))
    a, b = a.astimezone(dt.UTC), b.astimezone(dt.UTC)
    tail = b.strftime("%H:%M") if a.date() == b.date() else b.strftime("%d %b %H:%M")
    return f"{a.strftime('%d %b %Y, %H:%M')}–{tail} UTC"


_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _ucum(text: str | None) -> str:
    """UCUM power-of-ten units as clinicians write them: 10*9/L -> ×10⁹/L, uL -> µL."""
    if not text:
        return ""
    text = re.sub(r"10\*(\d+)", lambda m: "×10" + m.group(1).translate(_SUP), text)
    return text.replace("uL", "µL").replace("{INR}", "")


def _sentence(text: str) -> str:
    """A fix as a sentence: its first letter capital (the rest as written), a full stop at the end."""
    text = str(text).strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


_T.env.filters.update(when=_when, num=_num, ucum=_ucum, sentence=_sentence)
_T.env.filters["cites"] = cites_filter  # citations as every other page writes them (no internal sources)
_T.env.globals.update(span=_span)


def _headers() -> dict[str, str]:
    return {"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                       "img-src 'self' data:; frame-ancestors 'self'; form-action 'self'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def _vocab(kb) -> dict[str, dict[str, str]]:
    v = {name: vocabulary(kb, name) for name in ("access", "anticoagulant", "adverse_event_type", "severity_waa",
                                                 "severity_ctcae", "calcium_route")}
    v["cytoreduction"] = vocabulary(kb, "cytoreduction")
    v["device"] = {k: d["label"] for k, d in kb.table("apheresis")["devices"].items() if d.get("purpose") == "depletion"}
    return v


def _page(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
    kb = service_state(request).kb
    return _T.TemplateResponse(request, name, {"request": request, "kb": kb, "vocab": _vocab(kb), **ctx},
                               status_code=status, headers=_headers())


def _audit(request: Request, kind: str, pseudonym: str | None = None) -> None:
    request.state.audit_subtype = f"registry-ui-{kind}"
    if pseudonym:
        request.state.audit_patient = pseudonym


# The form's labels: the page shows them, and every error names its field by them.
LABELS: dict[str, str] = {
    "started_at": "Start", "ended_at": "End", "device": "Device", "protocol": "Protocol / software",
    "access": "Vascular access", "volume_processed_l": "Whole blood processed (L)", "run_time_min": "Run time (min)",
    "product_volume_ml": "Product volume (mL)", "anticoagulant": "Anticoagulant",
    "inlet_ac_ratio": "Inlet : anticoagulant ratio (x:1)", "ac_volume_ml": "Anticoagulant used (mL)",
    "calcium_given_mmol": "Calcium given (mmol)", "calcium_route": "Calcium route",
    "pre_wbc_value": "White cells before", "post_wbc_value": "White cells after",
    "pre_platelets_value": "Platelets before", "post_platelets_value": "Platelets after",
    "ica_value": "Ionised calcium during the run",
    "interrupted": "The run was interrupted", "interruptions": "Interruptions (what, how long)",
    "ae_type": "Adverse event", "ae_scale": "Scale", "ae_severity": "Severity", "ae_action": "Action taken",
    "ae_run_stopped": "The run was stopped for this event", "recorded_by": "Recorded by", "notes": "Notes",
    "utc_offset_min": "Time zone of the form (set by the browser)",
}
COUNTS = ("pre_wbc", "post_wbc", "pre_platelets", "post_platelets", "ica")
LABELS |= {f"{k}_at": f"{LABELS[k + '_value']}: taken at" for k in COUNTS}
SCALES = {"WAA": "WAA (mild / moderate / severe)", "CTCAE": "CTCAE grade"}
NO_ADVERSE_EVENT = "none"  # the adverse-event choice "No adverse event" (recorded as such, never by default)
_TICKED, _UNTICKED = ("on", "yes", "true", "1"), ("", "off", "no", "false", "0")
_T.env.globals.update(labels=LABELS, scales=SCALES, no_adverse_event=NO_ADVERSE_EVENT)


def _as_shown(value: Any) -> Any:
    """A value as an error shows it (a long one shortened, as every error does)."""
    return ErrorDetail("", value, "", "").to_dict()["value"]


def _error_page(request: Request, title: str, problems: list[dict[str, Any]], status: int) -> HTMLResponse:
    """An error as a page of the site (never the API's JSON), with the way back to the ward list."""
    return _page(request, "registry_error.html", {"title": title, "errors": problems}, status=status)


def _unknown_patient(request: Request, pseudonym: str) -> HTMLResponse:
    return _error_page(request, "No such patient in the follow-up registry", [
        {"field": "Patient", "value": _as_shown(pseudonym), "expected": "the pseudonym of a patient registered for follow-up",
         "fix": "choose the patient from the ward list, or register the patient first"}], 404)


@router.get("/ui/patients", response_class=HTMLResponse)
def ward_page(request: Request, page: str = "1", ward: str = "", _caller=Depends(api_caller)) -> HTMLResponse:
    _audit(request, "read")
    page, ward = page.strip(), ward.strip()
    number = int(page) if page.isascii() and page.isdigit() and len(page) <= 9 else None
    problems = []
    if len(ward) > 64:
        problems.append({"field": "Ward", "value": _as_shown(ward), "expected": "a ward name of at most 64 characters",
                         "fix": "type the ward's name as it is registered, or leave it empty for all wards"})
    if number is not None and not problems:
        try:
            w = registry_of(request.app).ward_list(page=number, per_page=50, ward=ward or None)
        except UnknownRecordError:
            number = None  # a page outside the pages there can be
    if number is None:
        problems.append({"field": "Page", "value": _as_shown(page), "expected": "a page number from 1 to 1,000,000",
                         "fix": "use the page links below the ward list"})
    if problems:
        return _error_page(request, "This page of the ward list cannot be shown", problems, 422)
    pages = max(1, -(-w["total"] // w["per_page"]))
    return _page(request, "registry_ward.html", {"w": w, "pages": pages, "ward": ward})


def _chart(t: dict[str, Any], f: dict[str, Any], kb) -> str:
    """The course chart (server-side SVG): counts and iCa, sessions hatched, cytoreduction dotted."""
    from leukos.service.chart import Line
    from leukos.service.registry_chart import course_timeline_svg

    def line(key: str, text: str, value: float | None = None) -> tuple[Line, ...]:
        p = kb.param(key)
        v = float(p.value if value is None else value)
        return (Line(v, f"{text} {v:g}" + (" (unverified)" if p.status == "U" and value is None else "")),)

    def pts(analyte: str) -> list:
        return [(_dt(r["taken_at"]), r["value"]) for r in t["labs"] if r["analyte"] == analyte]

    series = [("White cell count (×10⁹/L)", pts("wbc"),
               line("apheresis.target_wbc_10e9_per_l", "target", f["trend"].get("target_wbc_10e9_per_l"))),
              ("Platelets (×10⁹/L)", pts("platelets"), line("management.platelet_threshold_non_apl_low", "commonly kept above")),
              ("Ionised calcium (mmol/L)", pts("ionized_calcium"),
               line("apheresis.ica_symptom_threshold_mmol_per_l", "symptoms below"))]
    return course_timeline_svg(series, sessions=[(_dt(x["started_at"]), _dt(x["ended_at"])) for x in t["procedures"]],
                               treatments=[(_dt(x["started_at"]), x["label"]) for x in t["treatments"]],
                               title=f"Counts of {t['patient']['pseudonym']} over time, measured values")


def _dt(v: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(v) if isinstance(v, str) else v


@router.get("/ui/patients/{pseudonym}", response_class=HTMLResponse)
def timeline_page(request: Request, pseudonym: str, _caller=Depends(api_caller)) -> HTMLResponse:
    _audit(request, "read", pseudonym)
    reg = registry_of(request.app)
    try:
        t = reg.timeline(pseudonym)
    except UnknownRecordError:
        return _unknown_patient(request, pseudonym)
    f = reg.follow_up(pseudonym).to_dict()  # a stored value the model refuses: said in its not-assessed part
    agents = vocabulary(service_state(request).kb, "cytoreduction")
    for x in t["treatments"]:
        x["label"] = agents.get(x["agent"], x["agent"])
    return _page(request, "registry_patient.html", {
        "t": t, "f": f, "p": t["patient"], "chart": _chart(t, f, service_state(request).kb),
        "recent_labs": list(reversed(t["labs"]))[:60], "analytes": service_state(request).kb.analytes})


def _form_zone(form: dict[str, str], problems: list[ErrorDetail]) -> dt.timezone:
    """The zone of the form's times: the browser's UTC offset (set by registry.js), else UTC."""
    raw = (form.get("utc_offset_min") or "0").strip()
    try:
        minutes = int(raw)
        if not -14 * 60 <= minutes <= 14 * 60:
            raise ValueError(raw)
    except ValueError:
        problems.append(ErrorDetail("utc_offset_min", raw, "the offset from UTC in minutes (-840 to 840)",
                                    "reload the form"))
        return dt.UTC
    return dt.timezone(dt.timedelta(minutes=minutes))


def _form_time(form: dict[str, str], key: str, problems: list[ErrorDetail], zone: dt.tzinfo = dt.UTC) -> str | None:
    raw = (form.get(key) or "").strip()
    if not raw:
        return None
    try:
        t = dt.datetime.fromisoformat(raw)
        # the form's inputs send a local time (the browser's zone); a time that names its own offset
        # keeps it (it was replaced by the form's zone: 08:00+05:00 stored as 08:00 local)
        t = t if t.tzinfo is not None else t.replace(tzinfo=zone)
        t.astimezone(dt.UTC)  # stored in UTC: 0001-01-01 00:00 an hour east of UTC is not a time that can be
    except (ValueError, OverflowError):
        problems.append(ErrorDetail(key, raw, "a date and time (YYYY-MM-DD HH:MM)", "pick the date and time"))
        return None
    return t.isoformat()


def _form_num(form: dict[str, str], key: str, problems: list[ErrorDetail]) -> float | None:
    """A number as the assessment form reads one (6,8 or 6.8; 250,000 is asked about, not guessed)."""
    raw = (form.get(key) or "").strip()
    if not raw:
        return None
    try:
        return parse_number(raw)  # refuses what is not a finite number too (400 digits)
    except ValueError:
        problems.append(_not_a_number(raw, key, LABELS[key]))
        return None


def _form_tick(form: dict[str, str], key: str, problems: list[ErrorDetail]) -> bool:
    raw = (form.get(key) or "").strip().lower()
    if raw in _TICKED:
        return True
    if raw not in _UNTICKED:
        problems.append(ErrorDetail(key, form[key], "ticked or not ticked", "tick the box or leave it empty"))
    return False


class FormError(LeukosUserError):
    """The form's own refusals (a number, a time, a tick, an answer): already worded, named by form field."""


def procedure_from_form(form: dict[str, str]) -> ProcedureIn:
    """The nurse's form (flat fields) as a :class:`ProcedureIn`; every problem named by the form's label."""
    problems: list[ErrorDetail] = []
    zone = _form_zone(form, problems)
    rec: dict[str, Any] = {"started_at": _form_time(form, "started_at", problems, zone),
                           "ended_at": _form_time(form, "ended_at", problems, zone)}
    for key in ("device", "protocol", "access", "anticoagulant", "calcium_route", "interruptions", "recorded_by", "notes"):
        if (form.get(key) or "").strip():
            rec[key] = form[key].strip()
    for key in ("volume_processed_l", "run_time_min", "inlet_ac_ratio", "ac_volume_ml", "calcium_given_mmol",
                "product_volume_ml"):
        v = _form_num(form, key, problems)
        if v is not None:
            rec[key] = v
    for key in ("pre_wbc", "post_wbc", "pre_platelets", "post_platelets"):
        v, at = _form_num(form, f"{key}_value", problems), _form_time(form, f"{key}_at", problems, zone)
        if v is not None or at is not None:
            rec[key] = {"value": v, "taken_at": at}
    ica, ica_at = _form_num(form, "ica_value", problems), _form_time(form, "ica_at", problems, zone)
    if ica is not None or ica_at is not None:
        rec["ionized_calcium"] = [{"value": ica, "taken_at": ica_at}]
    rec["interrupted"] = _form_tick(form, "interrupted", problems)
    if rec.get("interruptions") and not rec["interrupted"]:
        problems.append(ErrorDetail("interrupted", None, "ticked when interruptions are described",
                                    f"tick \u2018{LABELS['interrupted']}\u2019, or clear "
                                    f"\u2018{LABELS['interruptions']}\u2019"))
    ae = (form.get("ae_type") or "").strip()
    run_stopped = _form_tick(form, "ae_run_stopped", problems)
    if not ae:
        problems.append(ErrorDetail("ae_type", None, "an answer: No adverse event, or the event that occurred",
                                    "choose \u2018No adverse event\u2019 or the event"))
    elif ae == NO_ADVERSE_EVENT:
        rec["adverse_events"] = []
    else:
        rec["adverse_events"] = [{"type": ae, "scale": form.get("ae_scale") or "WAA",
                                  "severity": form.get("ae_severity") or "", "action": form.get("ae_action") or None,
                                  "run_stopped": run_stopped}]
    if problems:
        raise FormError(problems, title="The procedure record cannot be saved")
    return parse(ProcedureIn, rec)


# -- the registry's refusals in the form's words -------------------------------------------------------

_CHOICES = {"device": "device", "access": "access", "anticoagulant": "anticoagulant", "calcium_route": "calcium_route",
            "ae_type": "adverse_event_type"}
_CODE = re.compile(r"\b[a-z]+_[a-z0-9_]+\b|Input should|correct this field")
_COUNT_TIMES, _COUNT_VALUES = {f"{k}_at" for k in COUNTS}, {f"{k}_value" for k in COUNTS}
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:[+-]\d\d:\d\d|Z)?")


def _form_key(path: str) -> str | None:
    """The form field of a registry field path (pre_wbc.taken_at, ionized_calcium[0].value, adverse_events.0.scale)."""
    p = re.sub(r"\[(\d+)\]", r".\1", path)
    m = re.fullmatch(r"(pre_wbc|post_wbc|pre_platelets|post_platelets|ionized_calcium\.\d+)(?:\.(value|unit|taken_at))?", p)
    if m:
        return ("ica" if m[1].startswith("ionized") else m[1]) + ("_at" if m[2] == "taken_at" else "_value")
    m = re.fullmatch(r"adverse_events(?:\.\d+)?(?:\.(\w+))?", p)
    if m:
        return "ae_" + (m[1] or "type")
    return p if p in LABELS else None


def _typed(form: dict[str, str], key: str) -> str | None:
    text = (form.get(key) or "").strip()
    if not text:
        return None
    return text.replace("T", " ", 1) if key.endswith("_at") and _ISO.match(text) else text


def _in_words(text: str, zone: dt.tzinfo) -> str:
    """Registry wording for the form: times in the form's zone, field names by their labels, units as written."""
    def when(m: re.Match) -> str:
        try:
            return dt.datetime.fromisoformat(m[0]).astimezone(zone).strftime("%d %b %Y %H:%M")
        except (ValueError, OverflowError):
            return m[0]

    text = _ISO.sub(when, text)
    text = re.sub(r"the canonical unit is (\S+)", r"the form takes it in \1", text)
    text = re.sub(r"\b(started_at|ended_at)\b", lambda m: f"\u2018{LABELS[m[1]]}\u2019", text)
    return _ucum(text)


def _choices(vocab: dict[str, str]) -> str:
    return "one of: " + ", ".join(vocab.values())


def form_problems(exc: LeukosUserError, form: dict[str, str], vocab: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """Every refusal of the nurse's record as the form says it: its label, the value as typed, what is
    expected (choices by their displayed labels) and the fix."""
    zone = _form_zone(form, [])
    out: list[dict[str, Any]] = []
    if isinstance(exc, FormError):
        return [{"field": LABELS.get(d.field, "The record"), "value": None if d.value is None else _as_shown(_typed(form, d.field)),
                 "expected": d.expected, "fix": d.fix} for d in exc.details]
    details = exc.details
    fields = {d.field for d in details}
    for d in details:
        key = _form_key(d.field)
        msg, fix = str(d.expected), str(d.fix)
        if key is None and "NUL" in msg:  # the whole record was refused: name each field that holds one
            out += [{"field": LABELS.get(k, k), "value": None, "expected": "text without hidden control characters",
                     "fix": "retype the text (a control character was pasted into it)"}
                    for k, v in form.items() if "\x00" in v and k in LABELS]
            continue
        if key is None:
            out.append({"field": "The record", "value": None, "expected": _in_words(msg, zone),
                        "fix": "check the entries and save again"})
            continue
        label, typed = LABELS[key], _typed(form, key)
        if key == "run_time_min" and typed is None:  # the run time was taken from the start and end times
            if "ended_at" in fields:
                continue  # the end before the start: said there
            out.append({"field": f"{LABELS['started_at']} and {LABELS['ended_at']}",
                        "value": _as_shown(f"{_typed(form, 'started_at')} to {_typed(form, 'ended_at')}"),
                        "expected": f"a run time {_in_words(msg, zone)}; these times make a run of "
                                    f"{_num(d.value, 0)} min",
                        "fix": "check the dates and times of the start and end of the run"})
            continue
        if "\x00" in (form.get(key) or ""):
            msg, fix = "text without hidden control characters", "retype the text (a control character was pasted into it)"
        elif key in _CHOICES or key == "ae_scale":
            options = SCALES if key == "ae_scale" else vocab[_CHOICES[key]]
            typed = options.get(form.get(key, ""), typed)
            msg = (f"the route of the calcium given: {_choices(options)}" if key == "calcium_route" and typed is None
                   else _choices(options))
            fix = "choose from the list"
        elif key == "ae_severity":
            scale = form.get("ae_scale") if form.get("ae_scale") in SCALES else "WAA"
            grades = vocab["severity_waa" if scale == "WAA" else "severity_ctcae"]
            typed = {**vocab["severity_waa"], **vocab["severity_ctcae"]}.get(form.get(key, ""), typed)
            msg, fix = f"a severity on the {SCALES[scale]} scale, {_choices(grades)}", "choose a severity of the scale chosen"
        elif m := re.search(r"at most (\d+) characters", msg):
            msg, fix = f"at most {m[1]} characters ({len(typed or '')} typed)", "shorten the text"
        elif typed is None:  # left empty but needed
            if key in _COUNT_TIMES:
                msg, fix = "the time the sample was taken, since a result is given", "give the time, or clear the result"
            elif key in _COUNT_VALUES:
                msg, fix = "the result, since its time is given", "give the result, or clear the time"
            else:
                msg, fix = "an entry: this field is required", f"fill in \u2018{label}\u2019"
        else:
            msg, fix = _in_words(msg, zone), _in_words(fix, zone)
            if _CODE.search(msg + " " + fix):  # words meant for programmers: say it plainly
                msg, fix = f"a value the form can record for \u2018{label}\u2019", f"check \u2018{label}\u2019"
        out.append({"field": label, "value": _as_shown(typed), "expected": msg, "fix": fix})
    return out


@router.get("/ui/patients/{pseudonym}/procedures/new", response_class=HTMLResponse)
def procedure_form(request: Request, pseudonym: str, _caller=Depends(api_caller)) -> HTMLResponse:
    _audit(request, "read", pseudonym)
    try:
        p = registry_of(request.app).get_patient(pseudonym)
    except UnknownRecordError:
        return _unknown_patient(request, pseudonym)
    return _page(request, "registry_procedure_form.html", {"p": p, "form": {}, "errors": []})


@router.post("/ui/patients/{pseudonym}/procedures", response_model=None)
async def procedure_submit(request: Request, pseudonym: str, _caller=Depends(api_caller)) -> Response:
    from starlette.concurrency import run_in_threadpool

    _audit(request, "write", pseudonym)
    reg = registry_of(request.app).acting_as(caller_actor(request, "web"))
    try:
        p = await run_in_threadpool(reg.get_patient, pseudonym)
    except UnknownRecordError:
        return _unknown_patient(request, pseudonym)
    data_in, unreadable = await read_form(request)
    form = {k: str(v) for k, v in data_in.items() if k not in unreadable}  # never store the parser's guess
    try:
        if unreadable:
            raise FormError([ErrorDetail(k, None, "readable text (UTF-8)", "retype it, or clear it")
                             for k in unreadable if k in LABELS] or
                            [ErrorDetail("record", None, "a form of readable text (UTF-8)",
                                         "submit the form again from this page")])
        data = procedure_from_form(form)
        await run_in_threadpool(reg.record_procedure, pseudonym, data)
    except UnknownRecordError:
        return _unknown_patient(request, pseudonym)
    except LeukosUserError as exc:
        vocab = _vocab(service_state(request).kb)
        return _page(request, "registry_procedure_form.html",
                     {"p": p, "form": form, "errors": form_problems(exc, form, vocab),
                      "title": "The procedure record cannot be saved"}, status=422)
    return RedirectResponse(f"/ui/patients/{pseudonym}", status_code=303)
