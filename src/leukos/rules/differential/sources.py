"""The value a case field holds, as shown in ``features_used``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leukos.domain.case import Case, GeneticResult

__all__ = ["source_value"]


def source_value(case: Case, path: str) -> Any:
    head, _, rest = path.partition(".")
    if head == "labs":
        lv = case.lab(rest)
        return None if lv is None else lv.describe()
    obj: Any = case.patient if head == "patient" else case.findings
    parts = rest.split(".")
    for part in parts:
        if obj is None:
            return None
        obj = obj.get(part) if isinstance(obj, Mapping) else getattr(obj, part, None)
    if isinstance(obj, GeneticResult):
        return None if obj is GeneticResult.UNKNOWN else obj.value
    if hasattr(obj, "value") and not isinstance(obj, (int, float)):
        return obj.value
    if isinstance(obj, tuple):
        return list(obj)
    if path == "findings.tissue_cytology" and obj is not None:
        return "given"
    return obj

