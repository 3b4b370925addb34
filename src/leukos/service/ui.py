"""The clinician web UI: server-rendered Jinja2 + Pico CSS, assets vendored in ``static/``.

A short form (the count first; sections open as needed; unit pickers from the knowledge data),
a result page for people (headline, findings by urgency, differential, formatted "why", the
leukapheresis order sheet only when indicated, an SVG chart) and a 1-2 page report (PDF and
print). Pages render the same views as the CDS cards (:mod:`leukos.service.views`) and format
the assessment's own values (:mod:`leukos.present`); nothing clinical is recomputed.

The assessed case is always the one the form shows: a bundled example *fills* the form (GET
``/?example=NAME``) and is kept only as the source of what the form cannot show (listed on the
page); every value typed on the form wins over it.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup

from leukos import __version__, present
from leukos.domain.assessment import DISCLAIMER, jsonable
from leukos.domain.case import Case
from leukos.errors import CaseFormatError, ErrorDetail, LeukosUserError
from leukos.interop.case_format import case_from_dict, parse_document
from leukos.interop.record_notes import shown_with_findings
from leukos.service import form_findings
from leukos.service.chart import Line, course_svg, panels_from_simulation
from leukos.service.deps import api_caller, service_state
from leukos.service.engines import EngineUnavailable, load_case
from leukos.service.form_text import read_form
from leukos.service.views import finding_views
from leukos.units import normalise_unit

__all__ = ["router", "PageCache", "FORM_LABS", "FORM_SECTIONS", "case_dict_from_form", "form_from_document",
           "parse_number", "compile_pages", "warm_up"]

router = APIRouter(include_in_schema=False)
_TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
_TEMPLATES.env.globals.update(version=__version__, disclaimer=DISCLAIMER, urgency_key=present.urgency_key)
# The pages these routes render (each with what it extends, includes and imports: compile_pages).
PAGES = ("index.html", "about.html", "cds_page.html", "gone.html", "report.html", "page_error.html")


def compile_pages(templates: Jinja2Templates, pages: tuple[str, ...]) -> None:
    """Compile ``pages`` and every template they extend, include or import, once (Jinja compiles a
    template on its first render: a few hundred ms for the first page after start-up)."""
    from jinja2 import meta

    env, todo, seen = templates.env, list(pages), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        env.get_template(name)
        source = env.loader.get_source(env, name)[0]
        todo.extend(ref for ref in meta.find_referenced_templates(env.parse(source)) if ref)


def warm_up() -> None:
    """What the first page after start-up would build: its templates, compiled."""
    compile_pages(_TEMPLATES, PAGES)


# Filters that put assessment texts into clinical words; they read the knowledge base of the page.
# cites: author-year labels of citation keys (the registry's pages use the same filter).
cites_filter = pass_context(lambda ctx, keys: present.cite_short(ctx["kb"], keys))
_TEMPLATES.env.filters.update(
    clin=pass_context(lambda ctx, s: present.clinical_text(s, ctx["kb"])),
    num=present.fmt_num,
    # the urgency is the badge beside the headline: not repeated in capitals at its end
    headline=lambda s: re.sub(r"\s*[—-]\s*(EMERGENT|URGENT|ROUTINE|NOT ASSESSED)\s*$", "", s),
    cite=pass_context(lambda ctx, key: present.citation_text(ctx["kb"], key)),
    cites=cites_filter,
    unit=pass_context(lambda ctx, u: present.unit_text(ctx["kb"], u)))

# The form, in clinical reading order: (id, title, groups of analytes). The first section is always
# open. A group with a legend is a fieldset of its own inside the section.
FORM_SECTIONS: tuple[tuple[str, str, tuple[tuple[str | None, tuple[str, ...]], ...]], ...] = (
    ("count", "White cell count", ((None, ("wbc", "blasts_pct")),)),
    ("cbc", "Blood count and differential", (
        (None, ("hemoglobin", "hematocrit", "platelets")),
        ("Differential, per cent of leukocytes", ("neutrophils_pct", "bands_pct", "lymphocytes_pct", "monocytes_pct",
                                                  "eosinophils_pct", "basophils_pct", "promyelocytes_pct",
                                                  "myelocytes_pct", "metamyelocytes_pct")),
        ("Differential, absolute counts", ("neutrophils_abs", "lymphocytes_abs", "monocytes_abs", "eosinophils_abs",
                                           "basophils_abs")))),
    ("chem", "Chemistry: tumour lysis and kidney", ((None, ("potassium", "potassium_plasma", "phosphate", "uric_acid",
                                                            "calcium", "ionized_calcium", "creatinine",
                                                            "creatinine_baseline", "ldh")),)),
    ("coag", "Coagulation", ((None, ("fibrinogen", "d_dimer", "pt_seconds", "pt_control_seconds", "inr")),)),
    ("gas", "Oxygenation", ((None, ("pao2", "spo2")),)),
)
FORM_LABS = tuple(a for _s, _t, groups in FORM_SECTIONS for _legend, labs in groups for a in labs)
# Said under a group of the form (the absolute counts: how they combine with the percentages).
_GROUP_HINTS = {"Differential, absolute counts": "Give the percentage, the absolute count or both: the differential derives "
                                   "the missing one from the white cell count and shows how."}
# Sections of the form after the symptoms: (id, title, its own selects, groups of form_findings).
_FINDING_SECTIONS = (("diagnosis", "Diagnosis, immunophenotype and molecular genetics",
                      ("known_diagnosis", "immunophenotype"), ("genetics",)),
                     # one folded section with the examination: each section is a Tab stop on the way to "Assess"
                     ("morphology", "Blood smear, bone marrow and examination", (), ("smear", "marrow", "examination")))
_PATIENT = (("age_years", "Age", "years"), ("weight_kg", "Weight", "kg"), ("height_cm", "Height", "cm"))
_DIAGNOSES = ("AML", "APL", "ALL", "CML_CP", "CML_AP", "CML_BP", "CML", "CLL", "CNL", "CMML", "OTHER_MPN",
              "LEUKEMOID_REACTIVE", "LEUKEMOID_PARANEOPLASTIC")
_PHENOTYPES = ("myeloid", "monocytic", "promyelocytic", "b_lymphoblastic", "t_lymphoblastic", "mature_b", "mature_t")
# Paths of a case document that the form shows (everything else of an example is listed as carried over).
_ON_FORM = {"format", "id", "patient.age_years", "patient.sex", "patient.weight_kg", "patient.height_cm",
            "symptoms", "findings.known_diagnosis", "findings.immunophenotype",
            *(f.path for f in form_findings.FIELDS), *(f"labs.{a}" for a in FORM_LABS)}


class PageCache:
    """Cases behind CDS card links: an unguessable token, kept one hour, at most 1000.

    The token is the capability: the EHR link opens the page without a second login. Only the
    case (or the request it came from, below) is kept, never an assessment: the page assesses it in
    full when opened (the cards' own assessment ranks the differential without explaining it).
    Nothing is written to disk.

    What is kept is either the case or, cheaper, where it came from: an object whose ``case()``
    builds it again (``leukos.service.cds.routes.CaseFromBody``: the call's request body, imported
    again when the page is opened). A served call then leaves one bytes object behind instead of the
    hundreds of small objects of a case: with 1000 cases kept, every call's objects were spread over
    the holes the oldest case left, and a CDS call cost ~5-8 % more CPU than with none kept.
    :meth:`get` may therefore import: call it in a worker pool.
    """

    def __init__(self, ttl_s: float = 3600, size: int = 1000):
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.ttl_s, self.size = ttl_s, size

    def put(self, case: Any) -> str:
        """Keep ``case`` (a :class:`Case`, or an object whose ``case()`` builds it); its link's token."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._items[token] = (time.monotonic() + self.ttl_s, case)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return token

    def get(self, token: str) -> Case | None:
        """The case behind ``token`` (built again from its source if that is what was kept), or None."""
        with self._lock:
            item = self._items.get(token)
        if item is None or item[0] < time.monotonic():
            return None
        kept = item[1]
        return kept if isinstance(kept, Case) else kept.case()


# --------------------------------------------------------------------------------------------
# Numbers and units as people type them

_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")


def parse_number(text: str) -> float:
    """``6,8`` and ``6.8`` -> 6.8. Raises ValueError for anything else, and for ``250,000`` / ``1,125``
    (a thousands separator or a decimal comma? the user is asked)."""
    t = text.strip().replace("\u00a0", "").replace(" ", "")
    if _DECIMAL_COMMA.match(t):
        if re.fullmatch(r"[+-]?[1-9]\d{0,2},\d{3}", t):
            raise ValueError("ambiguous")  # 250,000 or 1,125: a thousands separator or a decimal comma?
        t = t.replace(",", ".")
    if not _NUMBER.match(t):
        raise ValueError(text)
    value = float(t)
    if not math.isfinite(value):
        raise ValueError("too large")  # 400 digits: beyond any number a computer holds, never a count
    return value


def _num(form: Mapping[str, str], key: str, field: str, label: str, problems: list[ErrorDetail]) -> float | None:
    text = (form.get(key) or "").strip()
    if not text:
        return None
    try:
        return parse_number(text)
    except ValueError:
        problems.append(_not_a_number(text, field, label))
        return None


def _not_a_number(text: str, field: str, label: str) -> ErrorDetail:
    try:
        parse_number(text)
    except ValueError as exc:
        if str(exc) == "ambiguous":
            return ErrorDetail(field=field, value=text, expected=f"a number for {label} that cannot be misread",
                               fix="a comma before three digits may be a thousands separator: write "
                                   f"{text.replace(',', '')} or {text.replace(',', '.')}")
        if str(exc) == "too large":
            return ErrorDetail(field=field, value=text, expected=f"a number for {label}",
                               fix="the number typed is far too large to be a measurement: check it")
    return ErrorDetail(field=field, value=text, expected=f"a number for {label}",
                       fix="type digits only, with a decimal point or comma (e.g. 6.8 or 6,8)")


def _units(kb, analyte: str) -> tuple[str, ...]:
    return kb.unit_offers.get(analyte) or (kb.analytes[analyte].unit,)


# --------------------------------------------------------------------------------------------
# Examples fill the form; the form builds the case

def _examples(request: Request) -> list[str]:
    d = service_state(request).settings.examples_dir
    if d is None or not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _checked_example(request: Request, name: str) -> str:
    if name not in _examples(request):
        raise CaseFormatError(ErrorDetail(field="example", value=name, expected="one of the listed examples",
                                          fix="pick an example from the list"))
    return name


def _example_doc(request: Request, name: str) -> dict[str, Any]:
    _checked_example(request, name)
    doc = parse_document((service_state(request).settings.examples_dir / name).read_bytes(), name=name)
    if not isinstance(doc, dict):
        raise CaseFormatError(ErrorDetail(field="example", value=name, expected="a leukos case", fix="pick another"))
    return doc


def form_from_document(doc: Mapping[str, Any], kb) -> dict[str, Any]:
    """The form fields showing a case document (values in the unit they were given in when offered)."""
    case = case_from_dict(copy.deepcopy(dict(doc)), kb, name="example")
    form: dict[str, Any] = {"case_id": case.id or ""}
    p = case.patient
    for key, _label, _unit in _PATIENT:
        v = getattr(p, key)
        form[key] = present.fmt_num(v) if v is not None else ""
    form["sex"] = p.sex.value if p.sex is not None else ""
    for name in FORM_LABS:
        lv = case.lab(name)
        if lv is None:
            continue
        value, unit = present.fmt_num(lv.value), lv.unit
        m = re.match(r"^\s*([+-]?[\d.]+)\s*(.*)$", lv.given or "")
        if m:
            given_unit = normalise_unit(m.group(2), dict(kb.unit_aliases)) if m.group(2).strip() else lv.unit
            if given_unit in _units(kb, name):
                value, unit = m.group(1), given_unit
        form[f"lab_{name}"], form[f"unit_{name}"] = value, unit
    f = case.findings
    form["known_diagnosis"] = f.known_diagnosis.value if f.known_diagnosis else ""
    form["immunophenotype"] = f.immunophenotype.value if f.immunophenotype else ""
    form.update(form_findings.form_values(case, present.fmt_num))
    form["symptoms"] = list(case.symptoms or ())
    form["symptoms_none"] = "1" if case.symptoms == () else ""
    return form


def _leaves(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, Mapping):
        out = []
        for k, v in obj.items():
            out += _leaves(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, obj)]


def carried_over(doc: Mapping[str, Any], kb) -> list[str]:
    """What an example holds that the form does not show, in words (it is assessed too)."""
    out = []
    lab = present.labels(kb)
    for path, v in _leaves(doc):
        if path in _ON_FORM or any(path.startswith(p + ".") for p in _ON_FORM if p.startswith("labs.")):
            continue
        if v is None or v == [] or v == {}:
            continue
        if isinstance(v, list):
            v = ", ".join(present.clinical_text(x, kb) for x in v)
        text = present.clinical_text(v, kb) if not isinstance(v, bool) else ("yes" if v else "no")
        out.append(f"{lab.word(path)}: {text}")
    return out


def case_dict_from_form(form: Mapping[str, Any], kb, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The case document the form describes; ``base`` (an example) supplies only what the form
    does not show. Typed values always win; a field cleared on the form is removed from the base."""
    problems: list[ErrorDetail] = []
    doc: dict[str, Any] = copy.deepcopy(dict(base)) if base else {}
    doc["format"] = "leukos-case/1"
    base_form = form_from_document(base, kb) if base else {}
    if (form.get("case_id") or "").strip():
        doc["id"] = form["case_id"].strip()[:80]
    else:
        doc.pop("id", None)
    patient = dict(doc.get("patient") or {})
    for key, label, _unit in _PATIENT:
        v = _num(form, key, f"patient.{key}", label.lower(), problems)
        if v is None:
            patient.pop(key, None)
        else:
            patient[key] = v
    if form.get("sex") in ("female", "male"):
        patient["sex"] = form["sex"]
    else:
        patient.pop("sex", None)
    doc["patient"] = patient
    labs = dict(doc.get("labs") or {})
    for name in FORM_LABS:
        an = kb.analytes.get(name)
        if an is None:
            continue
        v = _num(form, f"lab_{name}", f"labs.{name}", an.label, problems)
        unit = form.get(f"unit_{name}") or an.unit
        if unit not in _units(kb, name):
            problems.append(ErrorDetail(field=f"labs.{name}.unit", value=unit, expected=f"a unit of {an.label}",
                                        fix="choose a unit from the list"))
            continue
        if v is None:
            labs.pop(name, None)
            continue
        unchanged = (base_form.get(f"lab_{name}") == (form.get(f"lab_{name}") or "").strip()
                     and base_form.get(f"unit_{name}") == unit)
        if unchanged and name in labs:
            continue  # the example's own entry (keeps its reference range and any series)
        entry: dict[str, Any] = {"value": v, "unit": unit}
        old = labs.get(name)
        if isinstance(old, Mapping) and unchanged:
            entry.update({k: old[k] for k in ("reference_low", "reference_high") if k in old})
        labs[name] = entry
    doc["labs"] = labs
    symptoms = [s for s in form.get("symptoms", []) if s in kb.symptoms]
    bad = [s for s in form.get("symptoms", []) if s not in kb.symptoms]
    if bad:
        problems.append(ErrorDetail("symptoms", bad[0], "a symptom from the list", "tick symptoms from the list"))
    if symptoms or form.get("symptoms_none"):
        doc["symptoms"] = symptoms
    else:
        doc.pop("symptoms", None)
    findings = dict(doc.get("findings") or {})
    for key, allowed in (("known_diagnosis", _DIAGNOSES), ("immunophenotype", _PHENOTYPES)):
        val = form.get(key) or ""
        if val and val not in allowed and val != (base_form.get(key) or ""):
            problems.append(ErrorDetail(f"findings.{key}", val, "a choice from the list", "pick from the list"))
        elif val:
            findings[key] = val
        else:
            findings.pop(key, None)
    doc["findings"] = findings
    # genetics, smear, marrow: written as typed; the case model checks them (case_from_dict)
    for f, text in form_findings.write_into(doc, form, parse_number):
        problems.append(_not_a_number(text, f.path, present.labels(kb).word(f.path)))
    if problems:
        raise CaseFormatError(problems)
    if "wbc" not in labs:
        raise CaseFormatError(ErrorDetail("labs.wbc", "(empty)", "the white cell count",
                                          "enter the white cell count: the assessment starts from it"))
    return doc


# --------------------------------------------------------------------------------------------
# Errors at the field, in plain language

def _field_id(field: str) -> str:
    parts = field.split(".")
    if parts[0] == "labs" and len(parts) > 1:
        return f"lab_{parts[1]}"
    if parts[0] == "patient" and len(parts) > 1:
        return parts[1]
    if field in form_findings.BY_PATH:
        return form_findings.BY_PATH[field].id
    if parts[0] == "findings" and len(parts) > 1:
        return parts[1]
    if parts[0] == "symptoms":
        return "symptoms"
    return "paste" if parts[0] not in ("example",) else "example"


def _value_words(value: Any, kb) -> Any:
    """A refused value as the clinician typed it: "-3.0 10*9/L" reads "-3 ×10⁹/L" (units as people write them)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return present.fmt_num(value)  # -5, not the case model's -5.0
    if not isinstance(value, str):
        return value
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)( .+)?", value)
    if m is None:
        return present.clinical_text(value, kb)  # the shared wording of unit codes and field names
    x = float(m[1])
    # 1e400 and 1e-400 are quoted as typed: written as a number they would read "infinite" and "0"
    shown = present.fmt_num(x) if math.isfinite(x) and (x != 0 or not re.search(r"[1-9]", m[1])) else m[1]
    return shown + present.clinical_text(m[2] or "", kb)


_BOUND_WORDS = {"maximum": "at most ", "minimum": "at least ", "exclusiveMaximum": "less than ",
                "exclusiveMinimum": "more than "}


def _plain_errors(exc: LeukosUserError, kb) -> tuple[list[dict[str, str]], dict[str, str]]:
    """(summary items, message per field id) in clinical words, no code names."""
    items, by_field = [], {}
    lab = present.labels(kb)
    for d in exc.details:
        fid = _field_id(d.field)
        what = lab.word(d.field) if d.field not in ("example", "paste") else (
            "the example" if d.field == "example" else "the pasted case")
        on_form = form_findings.BY_PATH.get(d.field)
        if on_form is not None and on_form.label:
            what = on_form.label  # the words of the control the message sits beside
        value = d.to_dict().get("value")
        value = value if d.field == "example" else _value_words(value, kb)  # a file name is shown as typed
        expected = present.clinical_text(d.expected, kb).replace("UCUM", "standard")
        fix = present.clinical_text(d.fix, kb).replace("use UCUM", "choose a unit from the list")
        # yes/no findings: the case model's words for them, as the form's lists say them
        expected = expected.replace("boolean or null", "yes, no or not recorded")
        fix = fix.replace("give a boolean or null (not recorded)", "pick an answer from the list")
        expected = expected.replace("integer or null", "a whole number, or empty (not recorded)")
        fix = fix.replace("give a integer or null (not recorded)", "type a whole number, or leave the field empty")
        expected = re.sub(r"^(maximum|minimum|exclusiveMaximum|exclusiveMinimum) (\S+)$",
                          lambda m: _BOUND_WORDS[m[1]] + m[2], expected)
        fix = re.sub(r"see `leukos schema case`[^.;]*", "see the bundled examples", fix)
        if value in (None, "(empty)", ""):
            msg = f"{what[:1].upper() + what[1:]} is not recorded: {expected}. {fix[:1].upper() + fix[1:]}."
            if d.field == "labs.wbc":
                msg = f"{what[:1].upper() + what[1:]}: {fix[:1].upper() + fix[1:]}."
        else:
            msg = f"{what[:1].upper() + what[1:]}: “{value}” cannot be used; expected {expected}. {fix[:1].upper() + fix[1:]}."
        if d.field == "pasted case" and d.expected.startswith("a mapping"):  # the text pasted is not a case at all
            msg = (f"The pasted text is {value}, not a case: paste a case in JSON or YAML, starting with fields "
                   "such as patient: and labs: (see the bundled examples).")
        msg = re.sub(r"\.\.(?=\s|$)", ".", msg)  # a sentence's full stop doubled (not a path's ../)
        if any(i["text"] == msg for i in items):
            continue  # the same problem found twice (e.g. by the schema and by the case model): said once
        by_field.setdefault(fid, msg)
        items.append({"field": fid, "text": msg})
    return items, by_field


# --------------------------------------------------------------------------------------------
# Pages

def _headers() -> dict[str, str]:
    return {"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                       "img-src 'self' data:; frame-ancestors 'self'; form-action 'self'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _group_hint(kb, legend: str | None, labs: tuple[str, ...]) -> str:
    """What is said under a group of lab fields: how it is used and the values accepted."""
    hint = _GROUP_HINTS.get(legend or "", "")
    bounds = {(kb.analytes[n].plausible, kb.analytes[n].unit) for n in labs if n in kb.analytes}
    if legend and len(bounds) == 1:
        (lo, hi), unit = bounds.pop()
        hint += (f" Values from {present.fmt_num(lo)} to {present.fmt_num(hi)} {present.unit_text(kb, unit)} "
                 "are accepted (a check of plausibility, not a reference range).")
    return hint.strip()


def _finding_sections(lab: present.Labels, form: Mapping[str, Any], errors: Mapping[str, str],
                      folded: bool) -> list[dict[str, Any]]:
    """The diagnosis/genetics and smear/marrow sections: open when they hold a value (until a result
    is shown) or an error, and how many values they hold."""
    groups = dict(_finding_groups(lab))
    out = []
    for sid, title, own, group_ids in _FINDING_SECTIONS:
        ids = [*own, *(r["f"].id for gid in group_ids for r in groups[gid][1])]
        n = sum(1 for k in ids if isinstance(form.get(k), str) and form[k].strip())
        out.append({"id": sid, "title": title, "groups": [groups[gid] for gid in group_ids], "n": n,
                    "open": (n > 0 and not folded) or any(k in errors for k in ids)})
    return out


def _finding_groups(lab: present.Labels) -> list[tuple[str, tuple[Any, list[dict[str, Any]]]]]:
    """The genetics, smear and marrow groups of the form: label, choices in words, range and hint."""
    out = []
    for g in form_findings.GROUPS:
        rows = []
        for f in g.fields:
            word = f.label or lab.word(f.path)
            label = word[:1].upper() + word[1:]
            if f.kind == "result":
                words = lab.section("genetic_result")
                options, empty = [(v, words.get(v, v)) for v in form_findings.choices(f)], "not known"
            elif f.kind == "flag":
                options, empty = [("yes", g.yes), ("no", g.no)], "not recorded"
            else:
                options, empty = [(v, f.option_text.format(v)) for v in form_findings.choices(f)], "not recorded"
            rng = form_findings.value_range(f)
            hint = f.hint
            if f.kind == "number" and rng:
                hint = f"{present.fmt_num(rng[0])} to {present.fmt_num(rng[1])} {f.unit} {hint}".strip()
            rows.append({"f": f, "label": label, "options": options, "empty": empty, "hint": hint})
        out.append((g.id, (g, rows)))
    return out


def error_page(request: Request, title: str, lines: list[str], *, status: int) -> HTMLResponse:
    """A page of the site saying what went wrong (see :mod:`leukos.service.page_errors`)."""
    kb = service_state(request).kb
    ctx = {"request": request, "kb": kb, "title": title, "lines": lines,
           "registry": request.url.path.startswith("/ui/patients")}
    return _TEMPLATES.TemplateResponse(request, "page_error.html", ctx, status_code=status, headers=_headers())


def _page(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
    kb = service_state(request).kb
    def row(n: str) -> tuple[str, Any, list[tuple[str, str]]]:
        return n, kb.analytes[n], [(u, present.unit_text(kb, u) or "ratio") for u in _units(kb, n)]

    sections = []
    for sid, title, groups in FORM_SECTIONS:
        rows = [(legend, _group_hint(kb, legend, labs), [row(n) for n in labs if n in kb.analytes])
                for legend, labs in groups]
        sections.append((sid, title, [r for _legend, _hint, rs in rows for r in rs], rows))
    lab = present.labels(kb)
    base = {"request": request, "kb": kb, "L": lab, "sections": sections, "patient_fields": _PATIENT,
            "symptoms": sorted(kb.symptoms.values(), key=lambda s: (s.organ, s.term)),
            "diagnoses": [(d, lab.diagnosis(d)) for d in _DIAGNOSES],
            "phenotypes": [(p, lab.section("phenotype").get(p, p)) for p in _PHENOTYPES],
            "examples": _examples(request), "form": {}, "field_errors": {},
            "error_items": [], "engines": service_state(request).engines.available}
    base.update(ctx)
    base["finding_sections"] = _finding_sections(lab, base["form"], base["field_errors"], folded=bool(base.get("a")))
    return _TEMPLATES.TemplateResponse(request, name, base, status_code=status, headers=_headers())


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, example: str | None = None, _caller=Depends(api_caller)) -> HTMLResponse:
    kb = service_state(request).kb
    if not example:
        return _page(request, "index.html", {})
    try:
        doc = _example_doc(request, example)
        form = form_from_document(doc, kb)
    except LeukosUserError as exc:
        items, by_field = _plain_errors(exc, kb)
        return _page(request, "index.html", {"error_items": items, "field_errors": by_field}, status=422)
    form["base_example"] = example
    return _page(request, "index.html", {"form": form, "carried": carried_over(doc, kb), "loaded_example": example})


@router.get("/about", response_class=HTMLResponse)
async def about(request: Request) -> HTMLResponse:
    return _page(request, "about.html", {"ruleset": service_state(request).kb.ruleset_version})


def _chart(sim: Mapping[str, Any], kb, reference_only: bool, panel_h: int = 150) -> str:
    def line(key: str, text: str) -> tuple[Line, ...]:
        p = kb.parameters.get(key)
        if p is None:
            return ()
        return (Line(float(p.value), f"{text} {present.fmt_num(p.value)} {present.unit_text(kb, p.unit)}"
                                     + (" (unverified)" if p.status == "U" else "")),)

    lines = {"wbc_10e9_per_l": line("apheresis.target_wbc_10e9_per_l", "target"),
             "ionized_calcium_mmol_per_l": line("apheresis.ica_symptom_threshold_mmol_per_l", "symptoms below"),
             "platelets_10e9_per_l": line("management.platelet_threshold_non_apl_low", "commonly kept above")}
    dur = sim.get("duration_min")
    title = (("FOR REFERENCE ONLY (not an order). " if reference_only else "")
             + f"Simulated course of one procedure ({present.fmt_num(sim.get('blood_volumes_processed'))} × TBV, "
             f"{present.fmt_num(dur)} min) and the following hours: model prediction, not a measurement")
    return course_svg(sim["times_min"], panels_from_simulation(sim, lines),
                      window_min=(0.0, float(dur)) if dur else None, title=title, panel_h=panel_h)


# A fix that asks for a value "in the case" on a page whose case is the EHR record: the value is
# recorded in the EHR (the next card brings it); this page has no form to add it to.
_ADD_TO_CASE = re.compile(r"\b[Aa]dd (.+?) to the case\b")


# A planner fix that names a choice of the case file and the CLI (tbv_method): no control of the page offers it.
_CASE_FILE_ONLY = re.compile(r",? or choose the mL/kg method explicitly \(.*?\)(?=\.|$)")


def _for_record(text: str) -> str:
    return _ADD_TO_CASE.sub(r"Record \1 in the EHR (the next leukos card uses it)", _CASE_FILE_ONLY.sub("", text))


def _for_form(text: str) -> str:
    return _ADD_TO_CASE.sub(r"Enter \1 on the form", _CASE_FILE_ONLY.sub("", text))


def result_context(st, case: Case, *, plan_anyway: bool = False, from_record: bool = False) -> dict[str, Any]:
    """Everything the result page and the report show (CPU-bound: call it off the event loop).
    ``from_record``: the case is the EHR record behind a CDS card, so what is missing is asked for
    in the EHR, not "in the case"."""
    kb = st.kb
    a = st.engines.assess(case, kb)
    views = finding_views(a, kb)
    lp = a.leukapheresis
    weight = case.patient.weight_kg
    doses = {i: present.dose_for_weight(r.text, weight) for i, r in enumerate(a.recommendations)}
    ctx: dict[str, Any] = {"a": a, "case": case, "views": views, "plan": None, "sheet": None, "plan_error": None,
                           "chart": None, "case_id": case.id, "doses": doses,
                           "trees": {v.key: present.working_tree(v.working, kb) for v in views},
                           "indicated": bool(lp.indicated) and not lp.apl_suspected, "plan_anyway": plan_anyway,
                           # not decided (e.g. symptoms not recorded): never shown as "not indicated"
                           "undecided": lp.indicated is None and not lp.apl_suspected,
                           "inputs": _inputs(case, kb), "examination": _examination(case, kb),
                           # what the record holds but could not be used: at the top, with the headline
                           "record_notes": [w for w in a.warnings if shown_with_findings(w)],
                           "other_warnings": [w for w in a.warnings if not shown_with_findings(w)]}
    want = ctx["indicated"] or plan_anyway
    if lp.apl_suspected:
        ctx["plan_error"] = "No leukapheresis plan: APL is known or suspected, a contraindication."
    elif not want:
        pass
    elif st.engines.plan_fn is None:
        ctx["plan_error"] = "The leukapheresis planner is not available in this build."
    else:
        try:
            plan = jsonable(st.engines.plan(case, {}, kb, a))
            ctx["plan"] = plan
            ctx["sheet"] = present.order_sheet(plan, kb, indicated=None if ctx["undecided"] else ctx["indicated"])
            if st.engines.simulate_fn is not None:
                sim = jsonable(st.engines.simulate(case, {}, kb))
                ctx["chart"] = Markup(_chart(sim, kb, ctx["sheet"].reference_only))
                ctx["chart_small"] = Markup(_chart(sim, kb, ctx["sheet"].reference_only, panel_h=50))
        except LeukosUserError as exc:
            items, _ = _plain_errors(exc, kb)
            ctx["plan_error"] = f"{exc.title}. " + " ".join(i["text"] for i in items)
            ctx["plan_error"] = (_for_record if from_record else _for_form)(ctx["plan_error"])
        except EngineUnavailable as exc:
            ctx["plan_error"] = str(exc)
    return ctx


def _inputs(case: Case, kb) -> list[tuple[str, str]]:
    """The values the assessment used, as entered (for the report's inputs table)."""
    rows = []
    for name in kb.analytes:
        lv = case.lab(name)
        if lv is None:
            continue
        given = present.clinical_text(lv.given, kb) if lv.given else ""
        canon = f"{present.fmt_num(lv.value)} {present.unit_text(kb, lv.unit)}".strip()
        if not given or given.replace(" ", "") == canon.replace(" ", ""):
            text = canon
        elif re.fullmatch(r"[\d.]+", given):
            text = canon
        else:
            text = f"{given} (= {canon})"
        rows.append((re.sub(r"\s*\((?:% of leukocytes|pulse oximetry|arterial|serum)\)", "", kb.analytes[name].label), text))
    return rows + form_findings.recorded(case, present.fmt_num, present.labels(kb).word, ("genetics", "smear", "marrow"))


def _examination(case: Case, kb) -> str:
    """The examination findings the case records, in a line ("splenomegaly present, hepatomegaly absent"):
    the report says them beside the symptoms (signs), not in the table of laboratory values."""
    return ", ".join(f"{label[:1].lower()}{label[1:]} {text}" for label, text in form_findings.recorded(
        case, present.fmt_num, present.labels(kb).word, ("examination",)))


_UNREADABLE = {"field": "", "text": "A value sent with the form is not readable text (it is not UTF-8), so nothing "
                                   "was assessed. Submit the form again from this page; a program that posts it "
                                   "must send UTF-8."}


async def _read_form(request: Request) -> tuple[dict[str, Any], str, bool]:
    """(the form's text fields, the pasted case, whether every field was readable UTF-8 text).

    A field that is not UTF-8 is left out: the parser's guess ("�", or Latin-1) is not what was typed."""
    data, unreadable = await read_form(request)
    form: dict[str, Any] = {k: v for k, v in data.items() if isinstance(v, str) and k != "symptom"
                            and k not in unreadable}
    form["symptoms"] = [s for s in data.getlist("symptom") if isinstance(s, str)] if "symptom" not in unreadable else []
    return form, (form.get("paste") or "").strip(), not unreadable


def _case(request: Request, form: dict[str, Any], paste: str) -> tuple[Case, dict | None]:
    st = service_state(request)
    if paste:
        if (form.get("lab_wbc") or "").strip():
            raise CaseFormatError(ErrorDetail("paste", "a pasted case and typed values", "one or the other",
                                              "clear the pasted case, or clear the typed values"))
        return load_case(paste, st.kb, name="pasted case"), None
    if form.get("example") and not form.get("base_example"):
        if not any(k.startswith("lab_") for k in form):  # an example posted on its own (API use): the whole example
            return load_case((st.settings.examples_dir / _checked_example(request, form["example"])).read_bytes(),
                             st.kb, name=form["example"]), None
        form["base_example"] = form["example"]  # with typed values: they win, the example fills the rest
    base = _example_doc(request, form["base_example"]) if form.get("base_example") else None
    doc = case_dict_from_form(form, st.kb, base)
    return case_from_dict(doc, st.kb, name="form"), base


@router.post("/ui/assess", response_class=HTMLResponse)
async def ui_assess(request: Request, _caller=Depends(api_caller)) -> HTMLResponse:
    request.state.audit_subtype = "ui-assess"
    st = service_state(request)
    form, paste, readable = await _read_form(request)
    ctx: dict[str, Any] = {"form": form}
    if not readable:
        return _page(request, "index.html", {**ctx, "error_items": [_UNREADABLE], "field_errors": {}}, status=422)
    plan_anyway = form.get("plan_anyway") == "1"

    def work() -> tuple[str | None, dict[str, Any]]:  # parse, assess, plan, simulate: in the pages' pool
        case, base = _case(request, form, paste)
        out = result_context(st, case, plan_anyway=plan_anyway)
        if base is not None:
            out.update(carried=carried_over(base, st.kb), loaded_example=form["base_example"])
        return case.id, out

    try:
        case_id, result = await st.page_pool.run(work)
        request.state.audit_patient = case_id
        ctx.update(result)
    except LeukosUserError as exc:
        items, by_field = _plain_errors(exc, st.kb)
        if form.get("base_example"):
            ctx["loaded_example"] = form["base_example"]
        ctx.update(error_items=items, field_errors=by_field, error_title=exc.title)
        return _page(request, "index.html", ctx, status=422)
    return _page(request, "index.html", ctx)


def _report_html(request: Request, ctx: dict[str, Any], *, printable: bool) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return _TEMPLATES.get_template("report.html").render(**ctx, printable=printable, generated=now,
                                                         kb=service_state(request).kb,
                                                         L=present.labels(service_state(request).kb))


@router.post("/ui/report", response_model=None)
async def ui_report(request: Request, format: str = "pdf", _caller=Depends(api_caller)) -> Response:
    """The 1-2 page report of the submitted case: PDF (WeasyPrint, if installed) or ``?format=html`` to print."""
    request.state.audit_subtype = "ui-report"
    st = service_state(request)
    form, paste, readable = await _read_form(request)
    if not readable:
        return _page(request, "index.html", {"form": form, "error_items": [_UNREADABLE], "field_errors": {}},
                     status=422)
    if format not in ("pdf", "html"):  # e.g. docx: was answered with a PDF, as if asked for one
        item = {"field": "", "text": f"Report format “{format[:40]}” cannot be made: choose the PDF report or the printable page."}
        return _page(request, "index.html", {"form": form, "error_items": [item], "field_errors": {}}, status=422)
    try:
        case, _base = await st.page_pool.run(_case, request, form, paste)
    except LeukosUserError as exc:
        items, by_field = _plain_errors(exc, st.kb)
        return _page(request, "index.html", {"form": form, "error_items": items, "field_errors": by_field},
                     status=422)
    request.state.audit_patient = case.id
    plan_anyway = form.get("plan_anyway") == "1"

    def report_html(printable: bool) -> str:  # assess, plan, simulate, render: in the pages' pool
        return _report_html(request, result_context(st, case, plan_anyway=plan_anyway), printable=printable)

    if format == "html":
        return HTMLResponse(await st.page_pool.run(report_html, True), headers=_headers())
    pdf, pages = await st.page_pool.run(lambda: render_pdf(report_html(False)))
    name = "leukos-report-" + re.sub(r"[^A-Za-z0-9._-]", "_", case.id or "case")[:60] + ".pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Report-Pages": str(pages),
                             **_headers()})


def render_pdf(html: str) -> tuple[bytes, int]:
    """The report as PDF (WeasyPrint) and its number of pages."""
    try:
        import weasyprint
    except ImportError:
        raise EngineUnavailable("PDF output (WeasyPrint, the 'pdf' extra)", "weasyprint") from None
    css = weasyprint.CSS(filename=str(Path(__file__).parent / "static" / "report.css"))
    doc = weasyprint.HTML(string=html).render(stylesheets=[css])
    return doc.write_pdf(), len(doc.pages)


@router.get("/ui/cds/{token}", response_class=HTMLResponse)
async def cds_page(token: str, request: Request) -> Response:
    st = service_state(request)
    request.state.audit_subtype = "ui-cds-link"
    case = await st.page_pool.run(st.pages.get, token)  # may import the kept request again: off the loop
    if case is None:
        return _page(request, "gone.html", {}, status=404)
    # the full assessment, as /api/assess gives it
    ctx = await st.page_pool.run(partial(result_context, st, case, from_record=True))
    return _page(request, "cds_page.html", ctx)
