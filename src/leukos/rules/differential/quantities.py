"""Measured quantities of a case as intervals: a partly known differential still bounds a sum."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leukos.domain.case import Case

__all__ = ["Interval", "MEASURES", "DISPLAY", "absolute", "blasts_any", "compare", "lab", "number", "pct_sum"]


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def describe(self, unit: str) -> str:
        if self.low == self.high:
            return f"{self.low:.3g} {unit}"
        if math.isinf(self.high) or self.high >= 100 and unit == "%":
            return f">= {self.low:.3g} {unit}"
        return f"{self.low:.3g}-{self.high:.3g} {unit}"


def compare(iv: Interval | None, op: str, t: float) -> bool | None:
    if iv is None:
        return None
    if op == ">":
        return True if iv.low > t else False if iv.high <= t else None
    if op == ">=":
        return True if iv.low >= t else False if iv.high < t else None
    if op == "<":
        return True if iv.high < t else False if iv.low >= t else None
    if op == "<=":
        return True if iv.high <= t else False if iv.low > t else None
    raise ValueError(f"unknown comparison {op!r}")


def lab(case: Case, name: str) -> Interval | None:
    lv = case.lab(name)
    if lv is None:
        return None
    if lv.comparator in (">", ">="):
        return Interval(lv.value, math.inf)
    if lv.comparator in ("<", "<="):
        return Interval(0.0, lv.value)
    return Interval(lv.value, lv.value)


def number(v: Any) -> Interval | None:
    if v is None or isinstance(v, bool):
        return None
    return Interval(float(v), float(v))


def pct_sum(parts: list[Interval | None]) -> Interval | None:
    known = [p for p in parts if p is not None]
    if not known:
        return None
    low = sum(p.low for p in known)
    if len(known) < len(parts):
        return Interval(low, max(low, 100.0))
    return Interval(low, sum(p.high for p in known))


def absolute(case: Case, pct_name: str) -> Interval | None:
    wbc, pct = lab(case, "wbc"), lab(case, pct_name)
    if wbc is None or pct is None:
        return None
    return Interval(wbc.low * pct.low / 100.0, wbc.high * pct.high / 100.0)


def blasts_any(case: Case) -> Interval | None:
    """Highest blast % of blood and marrow; bounded below by whichever is known."""
    pb, bm = lab(case, "blasts_pct"), number(case.findings.marrow.blasts_pct)
    if pb is None and bm is None:
        return None
    if pb is not None and bm is not None:
        return Interval(max(pb.low, bm.low), max(pb.high, bm.high))
    one = pb or bm
    return Interval(one.low, max(one.high, 100.0))


def _tissue_blasts(case: Case, *, exclude_sites: tuple[str, ...] = ()) -> Interval | None:
    tc = case.findings.tissue_cytology
    if tc is None:
        return None
    if exclude_sites and tc.site and tc.site.lower() in exclude_sites:
        return Interval(0.0, 0.0)  # not extramedullary in that classification's sense
    return number(tc.blasts_pct)


# name -> (function, unit, case fields read)
MEASURES: dict[str, tuple[Callable[[Case], Interval | None], str, tuple[str, ...]]] = {
    "wbc": (lambda c: lab(c, "wbc"), "x10^9/L", ("labs.wbc",)),
    "platelets": (lambda c: lab(c, "platelets"), "x10^9/L", ("labs.platelets",)),
    "blasts_pb_pct": (lambda c: lab(c, "blasts_pct"), "%", ("labs.blasts_pct",)),
    "blasts_any_pct": (blasts_any, "%", ("labs.blasts_pct", "findings.marrow.blasts_pct")),
    "marrow_blasts_pct": (lambda c: number(c.findings.marrow.blasts_pct), "%", ("findings.marrow.blasts_pct",)),
    "basophils_pct": (lambda c: lab(c, "basophils_pct"), "%", ("labs.basophils_pct",)),
    "basophils_abs": (lambda c: absolute(c, "basophils_pct"), "x10^9/L", ("labs.wbc", "labs.basophils_pct")),
    "eosinophils_abs": (lambda c: absolute(c, "eosinophils_pct"), "x10^9/L", ("labs.wbc", "labs.eosinophils_pct")),
    "monocytes_abs": (lambda c: absolute(c, "monocytes_pct"), "x10^9/L", ("labs.wbc", "labs.monocytes_pct")),
    "monocytes_pct": (lambda c: lab(c, "monocytes_pct"), "%", ("labs.monocytes_pct",)),
    "lymphocytes_pct": (lambda c: lab(c, "lymphocytes_pct"), "%", ("labs.lymphocytes_pct",)),
    "promyelocytes_pct": (lambda c: lab(c, "promyelocytes_pct"), "%", ("labs.promyelocytes_pct",)),
    "lymphocytes_abs": (lambda c: absolute(c, "lymphocytes_pct"), "x10^9/L", ("labs.wbc", "labs.lymphocytes_pct")),
    "age_years": (lambda c: number(c.patient.age_years), "years", ("patient.age_years",)),
    "ig_pct": (lambda c: pct_sum([lab(c, n) for n in ("promyelocytes_pct", "myelocytes_pct", "metamyelocytes_pct")]),
               "%", ("labs.promyelocytes_pct", "labs.myelocytes_pct", "labs.metamyelocytes_pct")),
    "neutrophils_bands_pct": (lambda c: pct_sum([lab(c, "neutrophils_pct"), lab(c, "bands_pct")]), "%",
                              ("labs.neutrophils_pct", "labs.bands_pct")),
    "blasts_promyelocytes_pct": (lambda c: pct_sum([lab(c, "blasts_pct"), lab(c, "promyelocytes_pct")]), "%",
                                 ("labs.blasts_pct", "labs.promyelocytes_pct")),
    "lap_score": (lambda c: number(c.findings.lap_score), "", ("findings.lap_score",)),
    "tissue_blasts_pct": (lambda c: _tissue_blasts(c), "%", ("findings.tissue_cytology.blasts_pct",)),
    "extramedullary_blasts_pct": (lambda c: _tissue_blasts(c), "%", ("findings.tissue_cytology.blasts_pct",)),
    "extramedullary_blasts_not_spleen_liver_pct": (
        lambda c: _tissue_blasts(c, exclude_sites=("spleen", "liver")), "%",
        ("findings.tissue_cytology.blasts_pct", "findings.tissue_cytology.site")),
}


DISPLAY = {
    "wbc": "WBC", "platelets": "platelets", "blasts_pb_pct": "blood blasts", "blasts_any_pct": "blasts",
    "marrow_blasts_pct": "marrow blasts", "basophils_pct": "basophils", "basophils_abs": "basophils",
    "eosinophils_abs": "eosinophils", "monocytes_abs": "monocytes", "monocytes_pct": "monocytes",
    "lymphocytes_pct": "lymphocytes", "lymphocytes_abs": "lymphocytes", "age_years": "age", "promyelocytes_pct": "promyelocytes", "ig_pct": "promyelocytes + myelocytes + metamyelocytes",
    "neutrophils_bands_pct": "segmented + bands", "blasts_promyelocytes_pct": "blasts + promyelocytes",
    "lap_score": "LAP score", "tissue_blasts_pct": "tissue blasts",
}


