"""The clinician web UI: server-rendered Jinja2 + htmx 2.0 + Pico CSS, assets vendored in ``static/``.

Pages render the same views as the CDS cards (:mod:`leukos.service.views`), so the web page and the
EHR card cannot disagree. Works without JavaScript (plain form POST); htmx swaps the result in
place when it is there. Plotly draws the simulated curves from JSON the server embeds.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from leukos import __version__
from leukos.domain.assessment import DISCLAIMER, Assessment, jsonable
from leukos.domain.case import Case
from leukos.errors import CaseFormatError, ErrorDetail, LeukosUserError
from leukos.interop.case_format import case_from_dict
from leukos.service.cds.cards import cards_for
from leukos.service.deps import api_caller, service_state
from leukos.service.engines import EngineUnavailable, load_case
from leukos.service.views import finding_views

__all__ = ["router", "PageCache", "FORM_LABS"]

router = APIRouter(include_in_schema=False)
_TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
_TEMPLATES.env.globals.update(version=__version__, disclaimer=DISCLAIMER)

# The labs offered on the form, in clinical reading order (names of the case format).
FORM_LABS = ("wbc", "blasts_pct", "hemoglobin", "hematocrit", "platelets", "neutrophils_pct", "lymphocytes_pct",
             "monocytes_pct", "promyelocytes_pct", "potassium", "phosphate", "uric_acid", "calcium",
             "ionized_calcium", "creatinine", "ldh", "fibrinogen", "d_dimer", "pt_seconds", "pt_control_seconds",
             "inr", "pao2", "spo2")
_DIAGNOSES = ("AML", "APL", "ALL", "CML_CP", "CML_AP", "CML_BP", "CML", "CLL", "CNL", "CMML", "OTHER_MPN",
              "LEUKEMOID_REACTIVE", "LEUKEMOID_PARANEOPLASTIC")
_PHENOTYPES = ("myeloid", "monocytic", "promyelocytic", "b_lymphoblastic", "t_lymphoblastic", "mature_b", "mature_t")


class PageCache:
    """Assessments behind CDS card links: an unguessable token, kept one hour, at most 1000.

    The token is the capability: the EHR link opens the page without a second login. Nothing
    is written to disk.
    """

    def __init__(self, ttl_s: float = 3600, size: int = 1000):
        self._items: OrderedDict[str, tuple[float, Case, Assessment]] = OrderedDict()
        self._lock = threading.Lock()
        self.ttl_s, self.size = ttl_s, size

    def put(self, case: Case, assessment: Assessment) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._items[token] = (time.monotonic() + self.ttl_s, case, assessment)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return token

    def get(self, token: str) -> tuple[Case, Assessment] | None:
        with self._lock:
            item = self._items.get(token)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1], item[2]


def _examples(request: Request) -> list[str]:
    d = service_state(request).settings.examples_dir
    if d is None or not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.is_file())


def _headers() -> dict[str, str]:
    return {"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                       "img-src 'self' data:; frame-ancestors 'self'; form-action 'self'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _page(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
    kb = service_state(request).kb
    base = {"request": request, "kb": kb, "labs": [(n, kb.analytes[n]) for n in FORM_LABS if n in kb.analytes],
            "symptoms": sorted(kb.symptoms.values(), key=lambda s: (s.organ, s.term)),
            "diagnoses": _DIAGNOSES, "phenotypes": _PHENOTYPES, "examples": _examples(request),
            "form": {}, "engines": service_state(request).engines.available}
    base.update(ctx)
    return _TEMPLATES.TemplateResponse(request, name, base, status_code=status, headers=_headers())


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, _caller=Depends(api_caller)) -> HTMLResponse:
    return _page(request, "index.html", {})


@router.get("/about", response_class=HTMLResponse)
async def about(request: Request) -> HTMLResponse:
    return _page(request, "about.html", {"ruleset": service_state(request).kb.ruleset_version})


def _num(text: str, field: str, problems: list[ErrorDetail]) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        problems.append(ErrorDetail(field=field, value=text, expected="a number", fix="type digits, e.g. 70"))
        return None


def case_dict_from_form(form: dict[str, Any], symptoms: list[str], kb) -> dict[str, Any]:
    """The case-format document described by the structured form (raises for non-numbers)."""
    problems: list[ErrorDetail] = []
    patient = {k: _num(form.get(k, ""), f"patient.{k}", problems) for k in ("age_years", "weight_kg", "height_cm")}
    patient = {k: v for k, v in patient.items() if v is not None}
    if form.get("sex"):
        patient["sex"] = form["sex"]
    labs: dict[str, Any] = {}
    for name in FORM_LABS:
        v = _num(form.get(f"lab_{name}", ""), f"labs.{name}", problems)
        if v is None:
            continue
        unit = form.get(f"unit_{name}", "").strip()
        labs[name] = {"value": v, "unit": unit} if unit else v
    if problems:
        raise CaseFormatError(problems)
    doc: dict[str, Any] = {"format": "leukos-case/1", "id": form.get("case_id") or None, "patient": patient,
                           "labs": labs, "symptoms": symptoms}
    findings: dict[str, Any] = {}
    if form.get("known_diagnosis"):
        findings["known_diagnosis"] = form["known_diagnosis"]
    if form.get("immunophenotype"):
        findings["immunophenotype"] = form["immunophenotype"]
    if form.get("pml_rara"):
        findings["genetics"] = {"pml_rara": form["pml_rara"]}
    if findings:
        doc["findings"] = findings
    return {k: v for k, v in doc.items() if v is not None}


def _result_context(request: Request, case: Case) -> dict[str, Any]:
    st = service_state(request)
    a = st.engines.assess(case, st.kb)
    views = finding_views(a, st.kb)
    base = (st.settings.public_base_url or str(request.base_url)).rstrip("/")
    cards = [c.model_dump(exclude_none=True) for c in
             cards_for(views, a, hook_instance="preview", base_url=base, page_url=None)]
    ctx: dict[str, Any] = {"a": a, "ad": a.to_dict(), "views": views, "cards": cards, "plan": None,
                           "plan_error": None, "chart": None, "case_id": case.id}
    if st.engines.plan_fn is None:
        ctx["plan_error"] = "The leukapheresis planner is not available in this build."
    elif a.leukapheresis.apl_suspected:
        ctx["plan_error"] = "No leukapheresis plan: APL is known or suspected (contraindication)."
    else:
        try:
            ctx["plan"] = jsonable(st.engines.plan(case, {}, st.kb, a))
            sim = jsonable(st.engines.simulate(case, {}, st.kb)) if st.engines.simulate_fn else None
            if sim:
                ctx["chart"] = json.dumps({k: sim.get(k) for k in ("times_min", "wbc_10e9_per_l",
                                                                   "ionized_calcium_mmol_per_l", "platelets_10e9_per_l")})
        except LeukosUserError as exc:
            ctx["plan_error"] = exc.message
        except EngineUnavailable as exc:
            ctx["plan_error"] = str(exc)
    return ctx


async def _case_from_form(request: Request) -> tuple[Case, dict[str, str], list[str]]:
    st = service_state(request)
    form_data = await request.form()
    form = {k: v for k, v in form_data.items() if isinstance(v, str) and k != "symptom"}
    symptoms = [s for s in form_data.getlist("symptom") if isinstance(s, str)]
    if form.get("paste", "").strip():
        case = load_case(form["paste"], st.kb, name="pasted case")
    elif form.get("example"):
        name = form["example"]
        if name not in _examples(request):
            raise CaseFormatError(ErrorDetail(field="example", value=name, expected="one of the listed examples",
                                              fix="pick an example from the list"))
        case = load_case((st.settings.examples_dir / name).read_bytes(), st.kb, name=name)
    else:
        case = case_from_dict(case_dict_from_form(form, symptoms, st.kb), st.kb, name="form")
    request.state.audit_patient = case.id
    return case, form, symptoms


@router.post("/ui/assess", response_class=HTMLResponse)
async def ui_assess(request: Request, _caller=Depends(api_caller)) -> HTMLResponse:
    request.state.audit_subtype = "ui-assess"
    partial = request.headers.get("hx-request") == "true"
    try:
        case, form, symptoms = await _case_from_form(request)
        ctx = _result_context(request, case)
    except LeukosUserError as exc:
        form_data = await request.form()
        ctx = {"error": exc, "form": {k: v for k, v in form_data.items() if isinstance(v, str)}}
        return _page(request, "_errors.html" if partial else "index.html", ctx, status=422)
    ctx.update(form=form, symptoms_checked=symptoms)
    return _page(request, "_result.html" if partial else "index.html", ctx)


@router.post("/ui/report", response_model=None)
async def ui_report(request: Request, format: str = "pdf", _caller=Depends(api_caller)) -> Response:
    """The printable report of the submitted case: PDF (WeasyPrint, if installed) or ``?format=html``."""
    request.state.audit_subtype = "ui-report"
    try:
        case, _form, _symptoms = await _case_from_form(request)
    except LeukosUserError as exc:
        return _page(request, "index.html", {"error": exc}, status=422)
    ctx = _result_context(request, case)
    html = _TEMPLATES.get_template("report.html").render(**ctx)
    if format == "html":
        return HTMLResponse(html, headers=_headers())
    try:
        import weasyprint
    except ImportError:
        raise EngineUnavailable("PDF output (WeasyPrint, the 'pdf' extra)", "weasyprint") from None
    css = weasyprint.CSS(filename=str(Path(__file__).parent / "static" / "report.css"))
    pdf = weasyprint.HTML(string=html).write_pdf(stylesheets=[css])
    name = "leukos-report-" + re.sub(r"[^A-Za-z0-9._-]", "_", case.id or "case")[:60] + ".pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', **_headers()})


@router.get("/ui/cds/{token}", response_class=HTMLResponse)
async def cds_page(token: str, request: Request) -> Response:
    item = service_state(request).pages.get(token)
    request.state.audit_subtype = "ui-cds-link"
    if item is None:
        return _page(request, "gone.html", {}, status=404)
    case, _a = item
    return _page(request, "cds_page.html", _result_context(request, case))
