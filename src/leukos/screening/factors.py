"""The (analyte, unit) -> factor table, computed in Python by the core's UnitConverter.

The batch engine must not keep its own copy of the unit rules: it finds the distinct
(analyte, unit) pairs of the input (a handful), asks :class:`leukos.units.UnitConverter` for
each factor (the same alias table, UCUM parsing and dimension check as the per-patient engine)
and joins the resulting small table. A pair the converter rejects is left out, so its rows get
the exclusion ``unknown_unit`` and are counted in summary.json.
"""

from __future__ import annotations

from dataclasses import dataclass

from leukos.errors import LeukosUserError
from leukos.knowledge import KnowledgeBase
from leukos.units import UnitConverter

__all__ = ["UnitFactor", "unit_factors", "factor_table"]


@dataclass(frozen=True)
class UnitFactor:
    analyte: str
    unit: str  # the unit text as given ("" = none given: the canonical unit, as in the core)
    factor: float | None  # None = unknown or wrong dimension
    reason: str | None = None


def unit_factors(pairs, kb: KnowledgeBase, converter: UnitConverter | None = None) -> list[UnitFactor]:
    """Factors for each distinct (analyte, unit text) pair."""
    converter = converter or UnitConverter(kb)
    out = []
    for analyte, unit in sorted(set(pairs), key=lambda p: (p[0] or "", p[1] or "")):
        if analyte is None:
            continue
        unit = unit or ""
        if unit.strip() == "":
            out.append(UnitFactor(analyte, unit, 1.0))
            continue
        try:
            out.append(UnitFactor(analyte, unit, converter.factor(analyte, unit, field=f"{analyte}.unit")))
        except LeukosUserError as exc:
            out.append(UnitFactor(analyte, unit, None, exc.details[0].fix))
    return out


def factor_table(factors: list[UnitFactor], kb: KnowledgeBase, backend=None):
    """An ibis table ``f_analyte, f_unit, factor, low, high`` of the known factors.

    With ``backend``, the table is created in the engine (a temporary table or view), which
    cached expressions need on Spark; without, an ibis memtable.
    """
    import uuid

    import ibis
    import pyarrow as pa

    known = [f for f in factors if f.factor is not None]
    data = pa.table({
        "f_analyte": pa.array([f.analyte for f in known], pa.string()),
        "f_unit": pa.array([f.unit for f in known], pa.string()),
        "factor": pa.array([f.factor for f in known], pa.float64()),
        "low": pa.array([kb.analyte(f.analyte).plausible[0] for f in known], pa.float64()),
        "high": pa.array([kb.analyte(f.analyte).plausible[1] for f in known], pa.float64()),
    })
    if backend is None:
        return ibis.memtable(data)
    name = f"leukos_unit_factors_{uuid.uuid4().hex[:12]}"
    return backend.temp_table(name, data)
