"""Read the leukos case format (JSON or YAML) into a frozen, validated :class:`~leukos.domain.Case`.

Everything wrong with a document is collected and raised at once as a
:class:`~leukos.errors.CaseFormatError` (or its unit/plausibility/vocabulary siblings), each
problem naming the field, the value, what was expected and how to fix it. Nothing partial
is returned.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from leukos.domain.case import (
    GENES,
    Case,
    Diagnosis,
    Findings,
    GeneticResult,
    Immunophenotype,
    Infection,
    LabValue,
    Marrow,
    Patient,
    Sex,
    Smear,
    SolidTumor,
    TissueCytology,
)
from leukos.errors import (
    CaseFormatError,
    ErrorDetail,
    ImplausibleValueError,
    LeukosUserError,
    UnitError,
    UnknownTermError,
)
from leukos.interop.age import AGE_YEARS_MAX, AGE_YEARS_MIN, implausible_age
from leukos.interop.conflicts import resolve_same_time
from leukos.interop.limits import UnitBudget, check_tree, loads_json, loads_yaml
from leukos.knowledge import KnowledgeBase, load_knowledge
from leukos.units import UnitConverter, converter_for, parse_value_with_unit

__all__ = ["MAX_CASE_BYTES", "parse_document", "case_from_dict", "load_case_text", "converter_for"]

MAX_CASE_BYTES = 5 * 1024 * 1024  # a case is a few kB; anything near this is not a case


def parse_document(text: str | bytes, *, name: str = "input") -> Any:
    """Parse JSON or YAML text into Python data, with a clear error for malformed input."""
    if isinstance(text, bytes):
        if len(text) > MAX_CASE_BYTES:
            raise CaseFormatError(_too_big(name))
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CaseFormatError(ErrorDetail(name, f"byte {exc.start}", "UTF-8 text (JSON or YAML)",
                                              "save the file as UTF-8 text")) from None
    if len(text) > MAX_CASE_BYTES:
        raise CaseFormatError(_too_big(name))
    if not text.strip():
        raise CaseFormatError(ErrorDetail(name, "(empty)", "a case in JSON or YAML",
                                          "see `leukos schema case` and the examples/ folder"))
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return loads_json(text, name=name)
    data = loads_yaml(text, name=name)
    return _yaml_scalars_to_text(data)


def _too_big(name: str) -> ErrorDetail:
    # Readers stop at the limit + 1 byte (a huge file is never read whole), so all that is known is "over".
    limit_mb = MAX_CASE_BYTES // (1024 * 1024)
    return ErrorDetail(name, f"more than {limit_mb} MB", f"a case of at most {limit_mb} MB",
                       "send one patient's case, not a data export (use `leukos screen` for tables)")


def _yaml_scalars_to_text(data: Any) -> Any:
    """YAML turns timestamps into datetime objects; the case format wants ISO text."""
    if isinstance(data, dict):
        return {str(k) if not isinstance(k, str) else k: _yaml_scalars_to_text(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_yaml_scalars_to_text(v) for v in data]
    if isinstance(data, (dt.datetime, dt.date)):
        return data.isoformat()
    return data


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    from leukos.interop.schema import shipped_case_schema

    schema = shipped_case_schema()
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=None)


def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(document)"


def _schema_problems(data: Any, kb: KnowledgeBase) -> list[ErrorDetail]:
    problems: list[ErrorDetail] = []
    for err in sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        # Values of known labs are checked by the converter, which says more than the schema can.
        if len(path) >= 2 and path[0] == "labs" and path[1] in kb.analytes:
            continue
        field = _path(path)
        if err.validator == "additionalProperties":
            allowed = list(err.schema.get("properties", {}))
            extra = [k for k in err.instance if k not in allowed]
            for key in extra:
                close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.6)
                fix = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else \
                    f"remove it; known fields here: {', '.join(allowed)}"
                problems.append(ErrorDetail(_path(path + [key]), key, "a known field", fix))
        elif err.validator == "enum":
            options = [o for o in err.validator_value if o is not None]
            close = difflib.get_close_matches(str(err.instance), [str(o) for o in options], n=3, cutoff=0.5)
            fix = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else \
                f"use one of: {', '.join(map(str, options))}"
            cls = "term" if path and path[0] == "symptoms" else "value"
            problems.append(ErrorDetail(field, err.instance, f"a known {cls} ({len(options)} options)", fix))
        elif err.validator == "type":
            want = err.validator_value
            want = " or ".join(want) if isinstance(want, list) else want
            problems.append(ErrorDetail(field, err.instance, f"{want}", f"give a {want.replace('null', 'null (not recorded)')}"))
        elif err.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            problems.append(ErrorDetail(field, err.instance, f"{err.validator} {err.validator_value}",
                                        "check the value and its unit"))
        elif err.validator == "const":
            problems.append(ErrorDetail(field, err.instance, repr(err.validator_value),
                                        f"set it to {err.validator_value!r} or leave it out"))
        else:
            problems.append(ErrorDetail(field, err.instance, err.message, "see `leukos schema case`"))
    return problems


def _time(value: Any, field: str, problems: list[ErrorDetail]) -> dt.datetime | None:
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        problems.append(ErrorDetail(field, value, "an ISO 8601 date-time, e.g. 2026-03-01T08:00:00Z",
                                    "write the time in ISO 8601"))
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _lab_item(name: str, raw: Any, field: str, conv: UnitConverter, problems: list[ErrorDetail],
              budget: UnitBudget | None = None) -> LabValue | None:
    unit: str | None = None
    comparator = None
    time = None
    ref_low = ref_high = None
    if isinstance(raw, bool):
        problems.append(ErrorDetail(field, raw, "a number, 'value unit' text, or {value, unit}", "give the measured value"))
        return None
    if isinstance(raw, (int, float)):
        value = float(raw)
        given = f"{raw:g}" if isinstance(raw, float) else str(raw)
    elif isinstance(raw, str):
        try:
            value, unit, comparator = parse_value_with_unit(raw)
        except ValueError:
            problems.append(ErrorDetail(field, raw, "a number followed by a unit, e.g. '250 K/uL'",
                                        "write the value first, then the unit"))
            return None
        given = raw.strip()
    elif isinstance(raw, dict):
        allowed = {"value", "unit", "time", "comparator", "reference_low", "reference_high"}
        for key in raw:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=2)
                problems.append(ErrorDetail(f"{field}.{key}", key, f"one of {sorted(allowed)}",
                                            f"did you mean {close[0]!r}?" if close else "remove it"))
        v = raw.get("value")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            problems.append(ErrorDetail(f"{field}.value", v, "a number", "give the measured value as a number"))
            return None
        value = float(v)
        unit = raw.get("unit")
        if unit is not None and not isinstance(unit, str):
            problems.append(ErrorDetail(f"{field}.unit", unit, "unit text, e.g. '10*9/L'", "write the unit as text"))
            return None
        comparator = raw.get("comparator")
        if comparator not in (None, "<", "<=", ">", ">="):
            problems.append(ErrorDetail(f"{field}.comparator", comparator, "one of <, <=, >, >=", "fix the comparator"))
            return None
        time = _time(raw.get("time"), f"{field}.time", problems)
        for key in ("reference_low", "reference_high"):
            r = raw.get(key)
            if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float))):
                problems.append(ErrorDetail(f"{field}.{key}", r, "a number in the same unit as value", "fix it"))
                return None
        given = f"{comparator or ''}{v:g}" + (f" {unit}" if unit else "")
        if not _reference_limits_ok(raw, field, problems):
            return None
    else:
        problems.append(ErrorDetail(field, raw, "a number, 'value unit' text, {value, unit}, or a list of them",
                                    "see `leukos schema case`"))
        return None
    if unit and budget is not None:
        problem = budget.check(unit, field + (".unit" if isinstance(raw, dict) else ""))
        if problem is not None:
            problems.append(problem)
            return None
    try:
        canonical = conv.to_canonical(name, value, unit, field=field)
        factor = 1.0 if not unit else conv.factor(name, unit, field=field + ".unit")
    except (UnitError, ImplausibleValueError) as exc:
        problems.extend(exc.details)
        return None
    if isinstance(raw, dict):
        if raw.get("reference_low") is not None:
            ref_low = float(raw["reference_low"]) * factor
        if raw.get("reference_high") is not None:
            ref_high = float(raw["reference_high"]) * factor
    return LabValue(analyte=name, value=canonical, unit=conv.canonical_unit(name), given=given, time=time,
                    comparator=comparator, reference_low=ref_low, reference_high=ref_high,
                    unit_given=bool(unit and unit.strip()))


def _reference_limits_ok(raw: Mapping[str, Any], field: str, problems: list[ErrorDetail]) -> bool:
    """A reference range is a positive interval: its upper limit decides verdicts (e.g. laboratory TLS)."""
    low, high = raw.get("reference_low"), raw.get("reference_high")
    ok = True
    for key, v in (("reference_low", low), ("reference_high", high)):
        if v is not None and not math.isfinite(v):
            problems.append(ErrorDetail(f"{field}.{key}", str(v), "a finite number (same unit as value)",
                                        "copy the limit from the laboratory report, or leave it out"))
            return False
    if high is not None and high <= 0:
        problems.append(ErrorDetail(f"{field}.reference_high", high, "a number greater than 0 (same unit as value)",
                                    "copy the upper reference limit from the laboratory report, or leave it out"))
        ok = False
    if low is not None and low < 0:
        problems.append(ErrorDetail(f"{field}.reference_low", low, "a number of at least 0 (same unit as value)",
                                    "copy the lower reference limit from the laboratory report, or leave it out"))
        ok = False
    if ok and low is not None and high is not None and low >= high:
        problems.append(ErrorDetail(f"{field}.reference_low", low, f"less than reference_high ({high:g})",
                                    "check that the two limits are not swapped"))
        ok = False
    return ok


def _labs(raw: Any, kb: KnowledgeBase, problems: list[ErrorDetail],
          notes: list[str] | None = None) -> Mapping[str, tuple[LabValue, ...]]:
    if not isinstance(raw, dict):
        return MappingProxyType({})
    conv = converter_for(kb)
    budget = UnitBudget()
    out: dict[str, tuple[LabValue, ...]] = {}
    for name, entry in raw.items():
        if name not in kb.analytes or entry is None:
            continue  # unknown names are reported by the schema pass; null = not recorded
        field = f"labs.{name}"
        if isinstance(entry, list):
            if not entry:
                problems.append(ErrorDetail(field, [], "at least one value", "remove the lab or give its values"))
                continue
            items = [_lab_item(name, e, f"{field}[{i}]", conv, problems, budget) for i, e in enumerate(entry)]
            if any(i is None for i in items):
                continue
            if len(items) > 1 and any(i.time is None for i in items):
                problems.append(ErrorDetail(field, "(series)", "a time on every value of a series",
                                            "add time: to each value so that the latest can be found"))
                continue
            out[name] = tuple(items)
        else:
            item = _lab_item(name, entry, field, conv, problems, budget)
            if item is not None:
                out[name] = (item,)
    resolved, conflict_notes = resolve_same_time(out, {k: kb.analytes[k].label for k in out}, kb.unit_display)
    if notes is not None:
        notes.extend(conflict_notes)
    return MappingProxyType(resolved)


def _bool_or_none(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _findings(raw: Any) -> Findings:
    if not isinstance(raw, dict):
        return Findings()
    genetics = {g: GeneticResult(v) for g, v in (raw.get("genetics") or {}).items() if g in GENES and v}
    st = raw.get("solid_tumor") or {}
    inf = raw.get("infection") or {}
    sm = raw.get("smear") or {}
    mw = raw.get("marrow") or {}
    tc = raw.get("tissue_cytology")
    tissue = None
    if isinstance(tc, dict):
        tissue = TissueCytology(
            site=tc.get("site"),
            blasts_pct=tc.get("blasts_pct"),
            trilineage_precursors=_bool_or_none(tc.get("trilineage_precursors")),
            megakaryocytes=_bool_or_none(tc.get("megakaryocytes")),
            erythroid_precursors=_bool_or_none(tc.get("erythroid_precursors")),
            immunophenotype=Immunophenotype(tc["immunophenotype"]) if tc.get("immunophenotype") else None,
        )
    drugs = raw.get("drugs")
    treatment = raw.get("treatment")
    return Findings(
        known_diagnosis=Diagnosis(raw["known_diagnosis"]) if raw.get("known_diagnosis") else None,
        immunophenotype=Immunophenotype(raw["immunophenotype"]) if raw.get("immunophenotype") else None,
        genetics=MappingProxyType(genetics),
        splenomegaly=_bool_or_none(raw.get("splenomegaly")),
        hepatomegaly=_bool_or_none(raw.get("hepatomegaly")),
        lymphadenopathy=_bool_or_none(raw.get("lymphadenopathy")),
        solid_tumor=SolidTumor(present=_bool_or_none(st.get("present")), site=st.get("site"),
                               marrow_involvement=_bool_or_none(st.get("marrow_involvement"))),
        cytokines=MappingProxyType(dict(raw.get("cytokines") or {})),
        infection=Infection(present=_bool_or_none(inf.get("present")), organism=inf.get("organism")),
        drugs=tuple(drugs) if isinstance(drugs, list) else None,
        smear=Smear(toxic_granulation=_bool_or_none(sm.get("toxic_granulation")),
                    dohle_bodies=_bool_or_none(sm.get("dohle_bodies")),
                    auer_rods=_bool_or_none(sm.get("auer_rods")),
                    abnormal_promyelocytes=_bool_or_none(sm.get("abnormal_promyelocytes")),
                    dysgranulopoiesis=_bool_or_none(sm.get("dysgranulopoiesis")),
                    teardrop_cells=_bool_or_none(sm.get("teardrop_cells")),
                    leukoerythroblastosis=_bool_or_none(sm.get("leukoerythroblastosis"))),
        lap_score=raw.get("lap_score"),
        marrow=Marrow(blasts_pct=mw.get("blasts_pct"), tumour_cells=_bool_or_none(mw.get("tumour_cells")),
                      fibrosis_grade=mw.get("fibrosis_grade")),
        tissue_cytology=tissue,
        treatment=tuple(treatment) if isinstance(treatment, list) else None,
    )


def case_from_dict(data: Any, kb: KnowledgeBase | None = None, *, name: str = "case") -> Case:
    """Validate a parsed case document and build the :class:`Case`.

    Raises
    ------
    CaseFormatError, UnitError, ImplausibleValueError, UnknownTermError
        with every problem found, each naming field, value, expectation and fix.
    """
    kb = kb or load_knowledge()
    check_tree(data, name=name)
    if not isinstance(data, dict):
        kind = {"str": "plain text", "list": "a list", "int": "a number", "float": "a number", "bool": "yes/no",
                "NoneType": "nothing"}.get(type(data).__name__, type(data).__name__)  # in words, not Python's type name
        raise CaseFormatError(ErrorDetail(name, kind, "a mapping (JSON object / YAML mapping)",
                                          "the case must start with fields such as patient:, labs:"))
    problems = _schema_problems(data, kb)
    notes: list[str] = []
    labs = _labs(data.get("labs"), kb, problems, notes)
    as_of = _time(data.get("as_of"), "as_of", problems)
    p = data.get("patient") or {}
    birth = None
    if isinstance(p, dict) and p.get("birth_date"):
        try:
            birth = dt.date.fromisoformat(str(p["birth_date"])[:10])
        except ValueError:
            problems.append(ErrorDetail("patient.birth_date", p["birth_date"], "an ISO date, e.g. 1970-05-31",
                                        "write the date as YYYY-MM-DD"))
    if birth is not None and p.get("age_years") is None and as_of is not None:
        age = implausible_age(birth, as_of)
        if age is not None:
            problems.append(ErrorDetail(
                "patient.birth_date", p["birth_date"],
                f"a birth date giving an age of {AGE_YEARS_MIN} to {AGE_YEARS_MAX} years on the case's date "
                f"(as_of {as_of.date().isoformat()}; this one gives {age:.1f} years)",
                "correct patient.birth_date, or as_of if the case's date is wrong"))
    if problems:
        raise _most_specific(problems)
    patient = Patient(
        age_years=p.get("age_years"),
        birth_date=birth,
        sex=Sex(p["sex"]) if p.get("sex") else None,
        weight_kg=p.get("weight_kg"),
        height_cm=p.get("height_cm"),
        pregnant=_bool_or_none(p.get("pregnant")),
    )
    symptoms = data.get("symptoms")
    grades = {k: v for k, v in (data.get("leukostasis_grades") or {}).items() if v is not None}
    return Case(
        id=data.get("id"),
        as_of=as_of,
        patient=patient,
        labs=labs,
        symptoms=tuple(dict.fromkeys(symptoms)) if isinstance(symptoms, list) else None,
        leukostasis_grades=MappingProxyType(grades),
        findings=_findings(data.get("findings")),
        import_notes=tuple(notes),
    )


def _most_specific(problems: list[ErrorDetail]) -> LeukosUserError:
    """One error carrying every problem; its class is the most telling kind among them."""
    kinds = set()
    for d in problems:
        if d.field.startswith("symptoms"):
            kinds.add(UnknownTermError)
        elif d.field.endswith(".unit"):
            kinds.add(UnitError)
        elif "plausibility bound" in d.expected:
            kinds.add(ImplausibleValueError)
        else:
            kinds.add(CaseFormatError)
    cls = kinds.pop() if len(kinds) == 1 else CaseFormatError
    return cls(problems)


def load_case_text(text: str | bytes, kb: KnowledgeBase | None = None, *, name: str = "input") -> Case:
    """Parse JSON/YAML text of a case (or a FHIR Bundle) into a :class:`Case`."""
    data = parse_document(text, name=name)
    if isinstance(data, dict) and data.get("resourceType") is not None:
        from leukos.interop.fhir import case_from_fhir

        return case_from_fhir(data, kb)
    return case_from_dict(data, kb, name=name)
