"""Measured quantities of a case as intervals: a partly known differential still bounds a sum."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from leukos.domain.case import Case

__all__ = ["CELLS", "COMPARE", "CellCount", "Interval", "MEASURES", "DISPLAY", "absolute", "blasts_any", "cell_count", "compare",
           "lab", "number", "pct_sum", "percent", "derivation", "MEASURE_CELL"]


class Interval(NamedTuple):
    """The true value lies in [low, high] (``high`` may be infinite). Immutable; a tuple because the
    differential builds about a hundred per case and a tuple is the cheapest immutable value."""

    low: float
    high: float

    def describe(self, unit: str) -> str:
        if self.low == self.high:
            return f"{self.low:.3g} {unit}"
        if math.isinf(self.high) or self.high >= 100 and unit == "%":
            return f">= {self.low:.3g} {unit}"
        return f"{self.low:.3g}-{self.high:.3g} {unit}"


def _gt(iv: Interval | None, t: float) -> bool | None:
    return None if iv is None else True if iv.low > t else False if iv.high <= t else None


def _ge(iv: Interval | None, t: float) -> bool | None:
    return None if iv is None else True if iv.low >= t else False if iv.high < t else None


def _lt(iv: Interval | None, t: float) -> bool | None:
    return None if iv is None else True if iv.high < t else False if iv.low >= t else None


def _le(iv: Interval | None, t: float) -> bool | None:
    return None if iv is None else True if iv.high <= t else False if iv.low > t else None


# The comparisons by operator: a caller that compares many times with one operator picks it once.
COMPARE: dict[str, Callable[[Interval | None, float], bool | None]] = {">": _gt, ">=": _ge, "<": _lt, "<=": _le}


def compare(iv: Interval | None, op: str, t: float) -> bool | None:
    """Is the true value (somewhere in ``iv``) ``op t``? True, False, or None when the interval
    straddles the threshold or is unknown."""
    if iv is None:
        return None
    try:
        return COMPARE[op](iv, t)
    except KeyError:
        raise ValueError(f"unknown comparison {op!r}") from None


def lab(case: Case, name: str) -> Interval | None:
    """The current value of analyte ``name`` as an interval (a censored value bounds one side), or None."""
    return case.derived("quantities.lab_intervals", _lab_intervals).get(name)


def _lab_intervals(case: Case) -> dict[str, Interval]:
    """Every analyte's current value as an interval, built once per case: the differential reads
    about eighty of them per assessment."""
    out = {}
    for name, series in case.labs.items():
        if not series:
            continue
        lv = series[-1]
        if lv.comparator in (">", ">="):
            out[name] = Interval(lv.value, math.inf)
        elif lv.comparator in ("<", "<="):
            out[name] = Interval(0.0, lv.value)
        else:
            out[name] = Interval(lv.value, lv.value)
    return out


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


CELLS = ("neutrophils", "lymphocytes", "monocytes", "eosinophils", "basophils")


class CellCount(NamedTuple):
    """One cell type of the differential as an absolute count (x10^9/L) and a share of the WBC (%).

    Each is the value the case gives or, when only the other one and the WBC are given, derived
    from them (``derived`` names which, ``working`` shows the arithmetic). This is the only place
    where a percentage becomes an absolute count or the reverse. Immutable; a tuple like
    :class:`Interval` because every assessment builds one per cell type.
    """

    cell: str
    abs: Interval | None
    pct: Interval | None
    derived: str | None = None  # "abs" | "pct" | None
    wbc: Interval | None = None  # the WBC a derived value was derived with

    @property
    def working(self) -> str:
        """The arithmetic of the derived value ("" when nothing was derived); written only when shown."""
        ab, pct, wbc = self.abs, self.pct, self.wbc
        if self.derived == "abs" and ab is not None and pct is not None and wbc is not None:
            return f"{self.cell} {ab.describe('x10^9/L')} = WBC {wbc.describe('x10^9/L')} x {pct.describe('%')} / 100"
        if self.derived == "pct" and ab is not None and pct is not None and wbc is not None:
            return f"{self.cell} {pct.describe('%')} = {ab.describe('x10^9/L')} / WBC {wbc.describe('x10^9/L')} x 100"
        return ""


def _ratio(num: Interval, den: Interval, scale: float) -> Interval | None:
    if den.high <= 0:
        return None
    low = num.low * scale / den.high if not math.isinf(den.high) else 0.0
    high = num.high * scale / den.low if den.low > 0 else math.inf
    return Interval(low, high)


def cell_count(case: Case, cell: str) -> CellCount:
    """Absolute count and percentage of ``cell`` (one of :data:`CELLS`), given or derived.

    A given value always wins over a derived one; nothing is derived without a WBC. Comparators
    carry through as intervals (a WBC '>1000' bounds a derived count from below only). Computed
    once per case and cell (the facts and measures of one assessment ask up to eight times).

    >>> # WBC 85.1, absolute monocytes 19.57: monocytes = 19.57 / 85.1 x 100 = 23.0 %
    """
    counts = case.derived("quantities.cell_counts", lambda c: {})
    hit = counts.get(cell)
    if hit is None:
        hit = counts[cell] = _cell_count(case, cell)
    return hit


def _cell_count(case: Case, cell: str) -> CellCount:
    wbc, ab, pct = lab(case, "wbc"), lab(case, f"{cell}_abs"), lab(case, f"{cell}_pct")
    if ab is None and pct is not None and wbc is not None:
        ab = Interval(wbc.low * pct.low / 100.0, wbc.high * pct.high / 100.0 if pct.high > 0 else 0.0)
        return CellCount(cell, ab, pct, "abs", wbc)
    if pct is None and ab is not None and wbc is not None:
        pct = _ratio(ab, wbc, 100.0)
        if pct is not None:
            pct = Interval(min(pct.low, 100.0), min(pct.high, 100.0))
            return CellCount(cell, ab, pct, "pct", wbc)
    return CellCount(cell, ab, pct)


def absolute(case: Case, cell: str) -> Interval | None:
    """Absolute count of ``cell`` in x10^9/L, given or derived (:func:`cell_count`)."""
    return cell_count(case, cell).abs


def percent(case: Case, cell: str) -> Interval | None:
    """Share of ``cell`` in % of leukocytes, given or derived (:func:`cell_count`)."""
    return cell_count(case, cell).pct


def _neutrophils_bands(case: Case) -> Interval | None:
    """Segmented neutrophils + bands (%). An absolute neutrophil count may already include the
    bands (automated counters do not separate them), so a percentage derived from it is added to
    the bands only as an upper bound."""
    neut, bands = cell_count(case, "neutrophils"), lab(case, "bands_pct")
    if neut.derived != "pct" or neut.pct is None:
        return pct_sum([neut.pct, bands])
    if bands is None:
        return Interval(neut.pct.low, 100.0)
    return Interval(max(neut.pct.low, bands.low), min(100.0, neut.pct.high + bands.high))


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
    "basophils_pct": (lambda c: percent(c, "basophils"), "%", ("labs.basophils_pct", "labs.basophils_abs", "labs.wbc")),
    "basophils_abs": (lambda c: absolute(c, "basophils"), "x10^9/L",
                      ("labs.basophils_abs", "labs.wbc", "labs.basophils_pct")),
    "eosinophils_abs": (lambda c: absolute(c, "eosinophils"), "x10^9/L",
                        ("labs.eosinophils_abs", "labs.wbc", "labs.eosinophils_pct")),
    "monocytes_abs": (lambda c: absolute(c, "monocytes"), "x10^9/L",
                      ("labs.monocytes_abs", "labs.wbc", "labs.monocytes_pct")),
    "monocytes_pct": (lambda c: percent(c, "monocytes"), "%", ("labs.monocytes_pct", "labs.monocytes_abs", "labs.wbc")),
    "lymphocytes_pct": (lambda c: percent(c, "lymphocytes"), "%",
                        ("labs.lymphocytes_pct", "labs.lymphocytes_abs", "labs.wbc")),
    "promyelocytes_pct": (lambda c: lab(c, "promyelocytes_pct"), "%", ("labs.promyelocytes_pct",)),
    "lymphocytes_abs": (lambda c: absolute(c, "lymphocytes"), "x10^9/L",
                        ("labs.lymphocytes_abs", "labs.wbc", "labs.lymphocytes_pct")),
    "age_years": (lambda c: number(c.patient.age_years), "years", ("patient.age_years",)),
    "ig_pct": (lambda c: pct_sum([lab(c, n) for n in ("promyelocytes_pct", "myelocytes_pct", "metamyelocytes_pct")]),
               "%", ("labs.promyelocytes_pct", "labs.myelocytes_pct", "labs.metamyelocytes_pct")),
    "neutrophils_bands_pct": (_neutrophils_bands, "%", ("labs.neutrophils_pct", "labs.bands_pct", "labs.neutrophils_abs")),
    "blasts_promyelocytes_pct": (lambda c: pct_sum([lab(c, "blasts_pct"), lab(c, "promyelocytes_pct")]), "%",
                                 ("labs.blasts_pct", "labs.promyelocytes_pct")),
    "lap_score": (lambda c: number(c.findings.lap_score), "", ("findings.lap_score",)),
    "marrow_fibrosis_grade": (lambda c: number(c.findings.marrow.fibrosis_grade), "", ("findings.marrow.fibrosis_grade",)),
    "tissue_blasts_pct": (lambda c: _tissue_blasts(c), "%", ("findings.tissue_cytology.blasts_pct",)),
    "extramedullary_blasts_pct": (lambda c: _tissue_blasts(c), "%", ("findings.tissue_cytology.blasts_pct",)),
    "extramedullary_blasts_not_spleen_liver_pct": (
        lambda c: _tissue_blasts(c, exclude_sites=("spleen", "liver")), "%",
        ("findings.tissue_cytology.blasts_pct", "findings.tissue_cytology.site")),
}


# measure -> the cell of the differential it reads (for the derivation shown in the output)
MEASURE_CELL = {"basophils_pct": "basophils", "basophils_abs": "basophils", "eosinophils_abs": "eosinophils",
                "monocytes_abs": "monocytes", "monocytes_pct": "monocytes", "lymphocytes_pct": "lymphocytes",
                "lymphocytes_abs": "lymphocytes", "neutrophils_bands_pct": "neutrophils"}


def derivation(case: Case, cells: tuple[str, ...]) -> str:
    """The working of every derived count among ``cells``, e.g. 'derived: monocytes 23 % = ...'."""
    parts = [cc.working for cc in (cell_count(case, c) for c in cells) if cc.derived]
    return "derived: " + "; ".join(parts) if parts else ""


DISPLAY = {
    "wbc": "WBC", "platelets": "platelets", "blasts_pb_pct": "blood blasts", "blasts_any_pct": "blasts",
    "marrow_blasts_pct": "marrow blasts", "basophils_pct": "basophils", "basophils_abs": "basophils",
    "eosinophils_abs": "eosinophils", "monocytes_abs": "monocytes", "monocytes_pct": "monocytes",
    "lymphocytes_pct": "lymphocytes", "lymphocytes_abs": "lymphocytes", "age_years": "age", "promyelocytes_pct": "promyelocytes", "ig_pct": "promyelocytes + myelocytes + metamyelocytes",
    "neutrophils_bands_pct": "segmented + bands", "blasts_promyelocytes_pct": "blasts + promyelocytes",
    "lap_score": "LAP score", "tissue_blasts_pct": "tissue blasts", "marrow_fibrosis_grade": "marrow fibrosis grade",
}


