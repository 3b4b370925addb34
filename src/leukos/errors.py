"""The three kinds of trouble .

A bug raises a plain exception and keeps its traceback. A user error is a
:class:`LeukosUserError`: it names the field, the value given, what was expected and
how to fix it, and every surface shows it without a traceback (CLI exit code 2, API
422). A clinical caveat is not an exception at all: it is a warning carried in the
result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "LeukosUserError",
    "CaseFormatError",
    "UnitError",
    "ImplausibleValueError",
    "UnknownTermError",
    "FhirInputError",
    "ErrorDetail",
]


@dataclass(frozen=True)
class ErrorDetail:
    """One problem found in the input."""

    field: str
    value: Any
    expected: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": _short(self.value), "expected": self.expected, "fix": self.fix}

    def __str__(self) -> str:
        got = "nothing (not given)" if self.value is None else repr(_short(self.value))  # never "got None"
        return f"{self.field}: got {got}; expected {self.expected}. Fix: {self.fix}"


def _short(value: Any, limit: int = 80) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    if isinstance(value, (dict, list)):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 1] + "…"
    return value


class LeukosUserError(ValueError):
    """Bad input from a user: shown without a traceback.

    Carries one or more :class:`ErrorDetail` so that a surface can list every problem at
    once instead of making the user fix them one by one.
    """

    def __init__(self, details: ErrorDetail | list[ErrorDetail] | str, *, title: str | None = None):
        if isinstance(details, str):
            details = [ErrorDetail(field="input", value=None, expected="valid input", fix=details)]
        elif isinstance(details, ErrorDetail):
            details = [details]
        self.details: tuple[ErrorDetail, ...] = tuple(details)
        self.title = title or self.default_title
        super().__init__(self.message)

    default_title = "The input could not be used"

    @property
    def message(self) -> str:
        lines = [self.title + ":"]
        lines += [f"  - {d}" for d in self.details]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "title": self.title, "details": [d.to_dict() for d in self.details]}


class CaseFormatError(LeukosUserError):
    """The case file is not valid JSON/YAML or does not follow the case format."""

    default_title = "The case does not follow the leukos case format"


class UnitError(LeukosUserError):
    """An unknown unit, or a unit of the wrong dimension for the analyte."""

    default_title = "A unit could not be used"


class ImplausibleValueError(LeukosUserError):
    """A value outside the physically possible range for the analyte."""

    default_title = "A value is outside the plausible range"


class UnknownTermError(LeukosUserError):
    """A term that is not in the controlled vocabulary."""

    default_title = "A term is not in the leukos vocabulary"


class FhirInputError(LeukosUserError):
    """A FHIR resource or Bundle that cannot be read."""

    default_title = "The FHIR input could not be read"
