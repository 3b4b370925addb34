"""Small helpers shared by the rules: tri-state comparisons and the gap collector.

Comparisons honour a result's comparator (``>1000`` above the analyser range, ``<0.5`` below
the limit of detection) and answer ``None`` when the answer is unknown, so that a missing or
censored value is never read as normal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from leukos.domain.case import Case, LabValue
from leukos.knowledge import KnowledgeBase, Parameter
from leukos.units import converter_for


def above(lv: LabValue | None, threshold: float, *, inclusive: bool) -> bool | None:
    """Is the true value above ``threshold`` (``>=`` when inclusive)? None when unknown."""
    if lv is None:
        return None
    return above_value(lv.value, lv.comparator, threshold, inclusive)


def above_value(v: float, c: str | None, threshold: float, inclusive: bool) -> bool | None:
    """:func:`above` of the value ``v`` with comparator ``c`` (None, '<', '<=', '>', '>=')."""
    if c is None:
        return v >= threshold if inclusive else v > threshold
    if c in (">", ">="):
        if v > threshold or (v == threshold and (c == ">" or inclusive)):
            return True
        return None
    # c in ("<", "<="): the true value is below v
    if v < threshold or (v == threshold and (c == "<" or not inclusive)):
        return False
    return None


def below(lv: LabValue | None, threshold: float, *, inclusive: bool) -> bool | None:
    """Is the true value below ``threshold`` (``<=`` when inclusive)? None when unknown."""
    a = above(lv, threshold, inclusive=not inclusive)
    return None if a is None else not a


def any3(values: Iterable[bool | None]) -> bool | None:
    """Three-valued OR: True if any is True, False if all are False, else None.

    Reads every value (one pass, no short cut: an iterator of checks is always run to the end)."""
    true = unknown = False
    for v in values:
        if v is True:
            true = True
        elif v is not False:
            unknown = True
    return True if true else None if unknown else False


def all3(values: Iterable[bool | None]) -> bool | None:
    """Three-valued AND: True if all are True, False if any is False, else None.

    Reads every value (one pass, no short cut: an iterator of checks is always run to the end)."""
    all_true, false = True, False
    for v in values:
        if v is not True:
            all_true = False
            if v is False:
                false = True
    return True if all_true else False if false else None


def param_working(p: Parameter) -> dict[str, Any]:
    d: dict[str, Any] = {"value": p.value, "unit": p.unit, "status": p.status, "source": list(p.citations)}
    if p.overridden:
        d["overridden_from"] = p.overridden_from
    return d


@dataclass
class Gaps:
    """Collects what could not be assessed, what was missing and which parameters were used."""

    kb: KnowledgeBase
    missing: list[str] = field(default_factory=list)
    not_assessed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    used_params: dict[str, Parameter] = field(default_factory=dict)

    def need(self, name: str) -> None:
        if name not in self.missing:
            self.missing.append(name)

    def cannot(self, text: str) -> None:
        if text not in self.not_assessed:
            self.not_assessed.append(text)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def p(self, key: str) -> Parameter:
        try:  # the knowledge base's mapping read directly (~55 reads per assessment); its error if unknown
            prm = self.kb.parameters[key]
        except KeyError:
            prm = self.kb.param(key)
        self.used_params[key] = prm
        return prm

    def v(self, key: str) -> Any:
        return self.p(key).value

    def threshold(self, key: str, analyte: str, *, met_when: str = "above") -> float:
        """:func:`threshold`, recording the parameter as used."""
        self.p(key)
        return threshold(self.kb, key, analyte, met_when=met_when)


def threshold(kb: KnowledgeBase, key: str, analyte: str, *, met_when: str = "above") -> float:
    """A threshold parameter in the canonical unit of ``analyte``.

    Sources print a criterion in one unit and a rounded equivalent in another (uric acid
    >= 8 mg/dL = 476 umol/L; calcium <= 7 mg/dL = 1.75 mmol/L). A value at either printed
    threshold must meet the criterion, so the more inclusive of the two is used: the lower for
    ``met_when="above"``, the higher for ``met_when="below"``. The difference is the rounding of
    the source (< 0.5 %). Every surface (per-patient rules, batch screening) uses this function.
    Computed once per knowledge base.
    """
    return kb.derived(("threshold", key, analyte, met_when),
                      lambda kb: _threshold(kb, key, analyte, met_when))


def _threshold(kb: KnowledgeBase, key: str, analyte: str, met_when: str) -> float:
    prm = kb.param(key)
    conv = converter_for(kb)
    values = [(float(prm.value), prm.unit)] + ([prm.also] if prm.also else [])
    canon = [v if u == kb.analyte(analyte).unit else v * conv.factor(analyte, u, field=key) for v, u in values]
    return min(canon) if met_when == "above" else max(canon)


def lab_working(lv: LabValue | None, case: Case) -> Any:
    """The working of a lab value of ``case`` (None when not recorded), its time written once per case
    (:meth:`Case.time_text`)."""
    return None if lv is None else lv.to_working(case.time_text)


def fmt(x: float) -> str:
    """Compact number for messages: 250, 7.7, 0.45."""
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"
