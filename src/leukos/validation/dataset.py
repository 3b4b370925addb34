"""A validation set: JSON Lines of ``{id, case, expected}`` (see docs/validation.md).

``case`` is a leukos-case/1 document; ``expected`` holds the reference answer transcribed from the
publication: ``category``, ``acceptable_codes`` (codes a correct differential may rank first, the
source's final diagnosis first), ``other_matching_codes``, ``hyperleukocytosis`` (bool or null),
``leukostasis_described`` (bool or null) and ``informative`` (whether the snapshot carries what a
clinician needs to name the diagnosis).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leukos.domain.case import Case, Diagnosis
from leukos.errors import CaseFormatError, ErrorDetail, LeukosUserError
from leukos.interop.case_format import case_from_dict
from leukos.knowledge import KnowledgeBase

__all__ = ["Expected", "ValidationCase", "MAX_SET_BYTES", "parse_validation_set"]

MAX_SET_BYTES = 20 * 1024 * 1024  # a set of a few thousand cases; far more is not a validation set
_CODES = frozenset(Diagnosis.__members__)


@dataclass(frozen=True)
class Expected:
    """The reference answer of one case (never edited to match the software)."""

    category: str
    acceptable_codes: tuple[str, ...]
    other_matching_codes: tuple[str, ...] = ()
    hyperleukocytosis: bool | None = None
    leukostasis_described: bool | None = None
    informative: bool = True


@dataclass(frozen=True)
class ValidationCase:
    id: str
    case: Case
    expected: Expected


def _fail(line: int, field: str, value: Any, expected: str, fix: str) -> CaseFormatError:
    return CaseFormatError(ErrorDetail(f"line {line}: {field}", value, expected, fix),
                           title="The validation set is not valid")


def _codes(raw: Any, line: int, field: str, *, required: bool) -> tuple[str, ...]:
    if raw is None and not required:
        return ()
    if not isinstance(raw, list) or (required and not raw) or not all(isinstance(c, str) for c in raw):
        raise _fail(line, field, raw, "a non-empty list of diagnosis codes" if required else "a list of diagnosis codes",
                    f"use codes of the case format: {', '.join(sorted(_CODES))}")
    bad = [c for c in raw if c not in _CODES]
    if bad:
        raise _fail(line, field, bad, f"diagnosis codes of the case format ({', '.join(sorted(_CODES))})",
                    "correct the code")
    return tuple(raw)


def _tri(raw: Any, line: int, field: str) -> bool | None:
    if raw is None or isinstance(raw, bool):
        return raw
    raise _fail(line, field, raw, "true, false or null", "write a JSON boolean or null")


def _expected(raw: Any, line: int) -> Expected:
    if not isinstance(raw, Mapping):
        raise _fail(line, "expected", raw, "an object with category and acceptable_codes", "add the reference answer")
    category = raw.get("category")
    if not isinstance(category, str) or not category:
        raise _fail(line, "expected.category", category, "a category name", "name the case's category")
    informative = raw.get("informative", True)
    if not isinstance(informative, bool):
        raise _fail(line, "expected.informative", informative, "true or false", "write a JSON boolean")
    return Expected(
        category=category,
        acceptable_codes=_codes(raw.get("acceptable_codes"), line, "expected.acceptable_codes", required=True),
        other_matching_codes=_codes(raw.get("other_matching_codes"), line, "expected.other_matching_codes",
                                    required=False),
        hyperleukocytosis=_tri(raw.get("hyperleukocytosis"), line, "expected.hyperleukocytosis"),
        leukostasis_described=_tri(raw.get("leukostasis_described"), line, "expected.leukostasis_described"),
        informative=informative,
    )


def parse_validation_set(text: str | bytes, kb: KnowledgeBase, *, name: str = "input") -> tuple[ValidationCase, ...]:
    """Parse a validation set (JSON Lines). Every case is validated like ``leukos assess`` would.

    Raises
    ------
    LeukosUserError
        Naming the line, field, value, what was expected and how to fix it.
    """
    if isinstance(text, bytes):
        if len(text) > MAX_SET_BYTES:
            raise CaseFormatError(ErrorDetail(name, f"{len(text)} bytes", f"at most {MAX_SET_BYTES} bytes",
                                              "split the set into smaller files"))
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CaseFormatError(ErrorDetail(name, f"byte {exc.start}", "UTF-8 text (JSON Lines)",
                                              "save the file as UTF-8")) from None
    out: list[ValidationCase] = []
    seen: set[str] = set()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _fail(n, "JSON", line[:60], "one JSON object per line", f"fix the JSON ({exc.msg})") from None
        if not isinstance(row, Mapping):
            raise _fail(n, "line", line[:60], "a JSON object {id, case, expected}", "write one object per line")
        cid = row.get("id")
        if not isinstance(cid, str) or not cid:
            raise _fail(n, "id", cid, "a non-empty text id", "give every case an id")
        if cid in seen:
            raise _fail(n, "id", cid, "a unique id", "rename the duplicate")
        seen.add(cid)
        expected = _expected(row.get("expected"), n)
        try:
            case = case_from_dict(row.get("case"), kb, name=f"{name} line {n} ({cid})")
        except LeukosUserError as exc:
            raise CaseFormatError([ErrorDetail(f"line {n} ({cid}): case.{d.field}", d.value, d.expected, d.fix)
                                   for d in exc.details], title="The validation set is not valid") from None
        out.append(ValidationCase(cid, case, expected))
    if not out:
        raise CaseFormatError(ErrorDetail(name, "no cases", "at least one line {id, case, expected}",
                                          "point the command at a validation set"))
    return tuple(out)
