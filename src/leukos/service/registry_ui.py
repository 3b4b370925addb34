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

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from leukos import __version__
from leukos.domain.assessment import DISCLAIMER
from leukos.errors import ErrorDetail, LeukosUserError
from leukos.registry.inputs import ProcedureIn, parse, vocabulary
from leukos.service.deps import api_caller, service_state
from leukos.service.registry_api import registry_of
from leukos.service.ui import cites_filter, compile_pages

__all__ = ["router", "procedure_from_form", "warm_up"]

router = APIRouter(include_in_schema=False)
_T = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
_T.env.globals.update(version=__version__, disclaimer=DISCLAIMER)


PAGES = ("registry_ward.html", "registry_patient.html", "registry_procedure_form.html")


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


_T.env.filters.update(when=_when, num=_num, ucum=_ucum)
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


@router.get("/ui/patients", response_class=HTMLResponse)
def ward_page(request: Request, page: int = Query(1, ge=1, le=1_000_000), ward: str | None = Query(None, max_length=64),
              _caller=Depends(api_caller)) -> HTMLResponse:
    _audit(request, "read")
    w = registry_of(request.app).ward_list(page=page, per_page=50, ward=ward or None)
    pages = max(1, -(-w["total"] // w["per_page"]))
    return _page(request, "registry_ward.html", {"w": w, "pages": pages, "ward": ward or ""})


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
    t = reg.timeline(pseudonym)
    f = reg.follow_up(pseudonym).to_dict()
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
        return dt.datetime.fromisoformat(raw).replace(tzinfo=zone).isoformat()
    except ValueError:
        problems.append(ErrorDetail(key, raw, "a date and time (YYYY-MM-DD HH:MM)", "pick the date and time"))
        return None


def _form_num(form: dict[str, str], key: str, problems: list[ErrorDetail]) -> float | None:
    raw = (form.get(key) or "").strip().replace(",", ".")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        problems.append(ErrorDetail(key, raw, "a number", "type digits only (the unit is shown beside the field)"))
        return None


def procedure_from_form(form: dict[str, str]) -> ProcedureIn:
    """The nurse's form (flat fields) as a :class:`ProcedureIn`; every problem named by its field."""
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
    rec["interrupted"] = form.get("interrupted") == "on"
    if (form.get("ae_type") or "").strip():
        rec["adverse_events"] = [{"type": form["ae_type"], "scale": form.get("ae_scale") or "WAA",
                                  "severity": form.get("ae_severity") or "", "action": form.get("ae_action") or None,
                                  "run_stopped": form.get("ae_run_stopped") == "on"}]
    if problems:
        raise LeukosUserError(problems, title="The procedure record cannot be saved")
    return parse(ProcedureIn, rec)


@router.get("/ui/patients/{pseudonym}/procedures/new", response_class=HTMLResponse)
def procedure_form(request: Request, pseudonym: str, _caller=Depends(api_caller)) -> HTMLResponse:
    _audit(request, "read", pseudonym)
    p = registry_of(request.app).get_patient(pseudonym)
    return _page(request, "registry_procedure_form.html", {"p": p, "form": {}, "errors": []})


@router.post("/ui/patients/{pseudonym}/procedures", response_model=None)
async def procedure_submit(request: Request, pseudonym: str, _caller=Depends(api_caller)) -> Response:
    from starlette.concurrency import run_in_threadpool

    _audit(request, "write", pseudonym)
    form = {k: str(v) for k, v in (await request.form()).items()}
    reg = registry_of(request.app)
    try:
        data = procedure_from_form(form)
        await run_in_threadpool(reg.record_procedure, pseudonym, data)
    except LeukosUserError as exc:
        p = await run_in_threadpool(reg.get_patient, pseudonym)
        return _page(request, "registry_procedure_form.html",
                     {"p": p, "form": form, "errors": [d.to_dict() for d in exc.details], "title": exc.title}, status=422)
    return RedirectResponse(f"/ui/patients/{pseudonym}", status_code=303)
