"""The form's findings fields (molecular genetics, blood smear, bone marrow, examination) and the case-document
path each one fills.

One table serves every direction: the form builds the case document from it, fills itself from a
case document (a bundled example), leaves out of the "carried over" list what it shows, and puts
an error of the case model back beside its control. Nothing here validates a value: the choices
and ranges shown come from the shipped JSON Schema of the case format, and whatever is posted is
written into the document as typed, so that :func:`leukos.interop.case_format.case_from_dict`
refuses a bad value with the same field, value, expectation and fix as the CLI and the REST API.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, MutableMapping
from typing import Any

from leukos.domain.case import GENES, Case, Smear

__all__ = ["FindingField", "FindingGroup", "GROUPS", "FIELDS", "BY_PATH", "schema_at", "choices", "value_range",
           "form_values", "write_into", "BY_ID"]

# How a yes/no finding is posted (readable in the page's URL fragment); anything else is passed on as
# typed and refused by the case model.
_FLAG = {"yes": True, "no": False}


@dataclasses.dataclass(frozen=True)
class FindingField:
    id: str  # name and id of the form control
    path: str  # dotted path in the case document
    kind: str  # "result" (a gene test), "flag" (seen / not seen), "number", "grade" (an integer scale)
    label: str | None = None  # the form's label when the path's word (labels.toml) reads badly on a form
    unit: str = ""  # shown beside a number
    hint: str = ""  # clinical meaning, shown under the control
    option_text: str = "{}"  # how a choice of a "grade" reads ({} = the value)


@dataclasses.dataclass(frozen=True)
class FindingGroup:
    id: str
    title: str
    fields: tuple[FindingField, ...]
    hint: str = ""
    yes: str = "seen"  # what a flag's two answers are called in this group
    no: str = "looked for, not seen"


# The smear findings as a form labels them (the words of labels.toml say "on the smear" for messages).
_SMEAR_LABELS = {
    "toxic_granulation": "Toxic granulation",
    "dohle_bodies": "Döhle bodies",
    "auer_rods": "Auer rods",
    "abnormal_promyelocytes": "Abnormal promyelocytes (promyelocyte-rich smear, faggot cells)",
    "dysgranulopoiesis": "Dysgranulopoiesis (dysplastic neutrophils or precursors)",
    "teardrop_cells": "Tear-drop red cells (dacrocytes)",
    "leukoerythroblastosis": "Leukoerythroblastic picture (nucleated red cells with immature granulocytes)",
}

GROUPS: tuple[FindingGroup, ...] = (
    FindingGroup("genetics", "Molecular genetics",
                 tuple(FindingField(g, f"findings.genetics.{g}", "result") for g in GENES),
                 hint="Leave “not known” when the test was not done or the result is pending: it counts as unknown, "
                      "never as negative."),
    FindingGroup("smear", "Blood smear",
                 tuple(FindingField(f"smear_{f.name}", f"findings.smear.{f.name}", "flag",
                                    label=_SMEAR_LABELS.get(f.name)) for f in dataclasses.fields(Smear)),
                 hint="Dysgranulopoiesis may also be seen on the marrow aspirate."),
    FindingGroup("marrow", "Bone marrow",
                 (FindingField("marrow_blasts_pct", "findings.marrow.blasts_pct", "number",
                               label="Blasts in the marrow aspirate", unit="%", hint="of all nucleated marrow cells"),
                  FindingField("marrow_fibrosis_grade", "findings.marrow.fibrosis_grade", "grade",
                               label="Marrow fibrosis grade (biopsy)", hint="reticulin or collagen fibrosis",
                               option_text="grade {0} (MF-{0})"),
                  FindingField("marrow_tumour_cells", "findings.marrow.tumour_cells", "flag",
                               label="Tumour cells (non-haematopoietic) in the marrow")),
                 yes="present", no="absent"),
    FindingGroup("examination", "Spleen, liver and lymph nodes",
                 (FindingField("splenomegaly", "findings.splenomegaly", "flag", label="Splenomegaly"),
                  FindingField("hepatomegaly", "findings.hepatomegaly", "flag", label="Hepatomegaly"),
                  FindingField("lymphadenopathy", "findings.lymphadenopathy", "flag", label="Lymphadenopathy")),
                 hint="Leave “not recorded” when it was not examined: it counts as unknown, never as absent.",
                 yes="present", no="absent"),
)
FIELDS: tuple[FindingField, ...] = tuple(f for g in GROUPS for f in g.fields)
BY_PATH: Mapping[str, FindingField] = {f.path: f for f in FIELDS}
BY_ID: Mapping[str, FindingField] = {f.id: f for f in FIELDS}
assert len(BY_ID) == len(FIELDS), "form control ids must be unique"


@functools.lru_cache(maxsize=1)
def _schema() -> Mapping[str, Any]:
    from leukos.interop.schema import shipped_case_schema

    return shipped_case_schema()


def schema_at(path: str) -> Mapping[str, Any]:
    """The JSON Schema of one field of the case format (``findings.marrow.fibrosis_grade``)."""
    node: Mapping[str, Any] = _schema()
    for part in path.split("."):
        node = node["properties"][part]
    return node


def choices(f: FindingField) -> tuple[str, ...]:
    """The values a field's list offers, besides "not known" (which leaves the field out)."""
    s = schema_at(f.path)
    if f.kind == "result":
        return tuple(v for v in s["enum"] if v not in (None, "unknown"))
    if f.kind == "flag":
        return tuple(_FLAG)
    if f.kind == "grade":
        lo, hi = value_range(f)
        return tuple(str(i) for i in range(int(lo), int(hi) + 1))
    return ()


def value_range(f: FindingField) -> tuple[float, float] | None:
    s = schema_at(f.path)
    if "minimum" in s and "maximum" in s:
        return s["minimum"], s["maximum"]
    return None


def _read(case: Case, path: str) -> Any:
    obj: Any = case
    for part in path.split("."):
        if obj is None:
            return None
        obj = obj.get(part) if isinstance(obj, Mapping) else getattr(obj, part, None)
    return obj


def form_values(case: Case, fmt_num) -> dict[str, str]:
    """The form controls showing a case's findings ("" = not recorded)."""
    out: dict[str, str] = {}
    for f in FIELDS:
        v = _read(case, f.path)
        if v is None:
            out[f.id] = ""
        elif f.kind == "flag":
            out[f.id] = "yes" if v else "no"
        elif f.kind == "result":
            v = getattr(v, "value", v)
            out[f.id] = v if v in choices(f) else ""
        else:
            out[f.id] = fmt_num(v)
    return out


def recorded(case: Case, fmt_num, word, groups: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """(label, value in words) of every finding of the form's groups (or of ``groups``, by id) that the
    case records, in form order; ``word`` names a path that has no form label (labels.toml)."""
    rows: list[tuple[str, str]] = []
    for g in GROUPS:
        if groups is not None and g.id not in groups:
            continue
        for f in g.fields:
            v = _read(case, f.path)
            if v is None:
                continue
            if f.kind == "flag":
                text = g.yes if v else g.no
            elif f.kind == "result":
                text = str(getattr(v, "value", v))
                if text == "unknown":
                    continue
            elif f.kind == "grade":
                text = f.option_text.format(fmt_num(v))
            else:
                text = f"{fmt_num(v)} {f.unit}".strip()
            rows.append((f.label or word(f.path), text))
    return rows


def _set(doc: MutableMapping[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = doc
    for p in parents:
        child = node.get(p)
        if not isinstance(child, Mapping):
            child = {}
        node[p] = child = dict(child)
        node = child
    node[leaf] = value


def _drop(doc: MutableMapping[str, Any], path: str) -> None:
    """Remove a path and the mappings it leaves empty."""
    *parents, leaf = path.split(".")
    chain = [doc]
    for p in parents:
        child = chain[-1].get(p)
        if not isinstance(child, Mapping):
            return
        chain[-1][p] = child = dict(child)
        chain.append(child)
    chain[-1].pop(leaf, None)
    for node, key in zip(reversed(chain[:-1]), reversed(parents), strict=True):
        if node[key] == {}:
            node.pop(key)


def write_into(doc: MutableMapping[str, Any], form: Mapping[str, Any], parse_number) -> list[tuple[FindingField, str]]:
    """Put the form's findings into a case document (typed values win; a field left empty is removed).

    A value is written as typed: a yes/no answer as true/false, a number as a number, anything else
    as its text, so that the case model refuses it with its own message. Returns the number fields
    whose text is not a number (the caller words that error, as for every other number on the form).
    """
    not_numbers: list[tuple[FindingField, str]] = []
    for f in FIELDS:
        raw = form.get(f.id)
        text = raw.strip() if isinstance(raw, str) else ""
        if not text:
            _drop(doc, f.path)
            continue
        value: Any = text
        if f.kind == "flag":
            value = _FLAG.get(text, text)
        elif f.kind in ("number", "grade"):
            try:
                number = parse_number(text)
            except ValueError:
                not_numbers.append((f, text))
                continue
            value = int(number) if math.isfinite(number) and number.is_integer() else number
        _set(doc, f.path, value)
    return not_numbers
