"""The (analyte, unit) -> factor table, computed in Python by the core's UnitConverter.

The batch engine must not keep its own copy of the unit rules: it finds the distinct
(analyte, unit) pairs of the input (a handful), asks :class:`leukos.units.UnitConverter` for
each factor (the same alias table, UCUM parsing and dimension check as the per-patient engine)
and joins the resulting small table. A pair the converter rejects is left out, so its rows get
the exclusion ``unknown_unit`` and are counted in summary.json.

A result without a unit is not assumed to be in the canonical unit: it is ``unknown_unit``
unless the user names the unit the source uses for that analyte (``--default-unit
wbc=10*9/L``), which is then converted like any other unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from leukos.errors import ErrorDetail, LeukosUserError
from leukos.knowledge import KnowledgeBase
from leukos.units import UnitConverter

__all__ = ["UnitFactor", "unit_factors", "factor_table", "factor_data", "factor_rows", "parse_default_units"]


@dataclass(frozen=True)
class UnitFactor:
    analyte: str
    unit: str  # the unit text as given ("" = none given: the canonical unit, as in the core)
    factor: float | None  # None = unknown or wrong dimension
    reason: str | None = None


def unit_factors(pairs, kb: KnowledgeBase, converter: UnitConverter | None = None, *,
                 default_units: Mapping[str, str] | None = None) -> list[UnitFactor]:
    """Factors for each distinct (analyte, unit text) pair.

    ``default_units`` maps an analyte to the unit its unit-less results are in; without one,
    a unit-less result has no factor (``unknown_unit``).
    """
    converter = converter or UnitConverter(kb)
    defaults = dict(default_units or {})
    out = []
    for analyte, unit in sorted(set(pairs), key=lambda p: (p[0] or "", p[1] or "")):
        if analyte is None:
            continue
        unit = unit or ""
        given = unit
        if unit.strip() == "":
            if analyte not in defaults:
                out.append(UnitFactor(analyte, unit, None, f"no unit given: name the unit of unit-less {analyte} "
                                                           f"results with --default-unit {analyte}=UNIT"))
                continue
            given = defaults[analyte]
        try:
            out.append(UnitFactor(analyte, unit, converter.factor(analyte, given, field=f"{analyte}.unit")))
        except LeukosUserError as exc:
            out.append(UnitFactor(analyte, unit, None, exc.details[0].fix))
    return out


def parse_default_units(text: str | None, kb: KnowledgeBase) -> dict[str, str]:
    """``wbc=10*9/L,potassium=mmol/L`` -> {"wbc": "10*9/L", ...}; each unit checked now, not mid-run.

    Raises
    ------
    LeukosUserError
        An unknown analyte or a unit that does not convert to the analyte's canonical unit.
    """
    if not text:
        return {}
    converter = UnitConverter(kb)
    out = {}
    for part in text.split(","):
        if not part.strip():
            continue
        analyte, sep, unit = part.partition("=")
        analyte, unit = analyte.strip().lower(), unit.strip()
        if not sep or not unit or analyte not in kb.analytes:
            raise LeukosUserError(ErrorDetail("--default-unit", part, "ANALYTE=UNIT with a known analyte "
                                              f"({', '.join(sorted(kb.analytes))})", "e.g. --default-unit wbc=10*9/L"))
        converter.factor(analyte, unit, field="--default-unit")  # raises a clear error for a wrong unit
        out[analyte] = unit
    return out


def factor_table(factors: list[UnitFactor], kb: KnowledgeBase, backend=None):
    """An ibis table ``f_analyte, f_unit, factor, low, high`` of the known factors.

    With ``backend``, the table is created in the engine (a temporary table or view), which
    cached expressions need on Spark; without, an ibis memtable.
    """
    import uuid

    import ibis

    data = factor_data(factors, kb)
    if backend is None:
        return ibis.memtable(data)
    name = f"leukos_unit_factors_{uuid.uuid4().hex[:12]}"
    return backend.temp_table(name, data)


def factor_rows(factors: list[UnitFactor], kb: KnowledgeBase) -> list[tuple[str, str, float, float, float]]:
    """The known factors as rows ``(f_analyte, f_unit, factor, low, high)`` (plausible bounds in the
    canonical unit)."""
    return [(f.analyte, f.unit, f.factor, kb.analyte(f.analyte).plausible[0], kb.analyte(f.analyte).plausible[1])
            for f in factors if f.factor is not None]


def factor_data(factors: list[UnitFactor], kb: KnowledgeBase):
    """The known factors as a pyarrow table ``f_analyte, f_unit, factor, low, high``."""
    import pyarrow as pa

    rows = factor_rows(factors, kb)
    names = ("f_analyte", "f_unit", "factor", "low", "high")
    types = (pa.string(), pa.string(), pa.float64(), pa.float64(), pa.float64())
    return pa.table({n: pa.array([r[i] for r in rows], t) for i, (n, t) in enumerate(zip(names, types, strict=True))})
