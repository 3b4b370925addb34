"""Units: real-world spellings -> UCUM -> the canonical unit of each analyte.

Conversion happens once, at the boundary. The path for a unit string is:

1. the alias table of the knowledge base (``units.toml``: ``K/uL`` -> ``10*3/uL``, never kelvin);
2. a normalisation rule for the power-of-ten spellings (``x10E3/uL``, ``10^9/L``, ``×10⁹/L``);
3. UCUM parsing (ucumvert on pint), annotations such as ``{FEU}`` removed;
4. a dimension check against the analyte's canonical unit (mass units convert to substance
   units through the analyte's molar mass; mEq/L through its valence).

The factor for each (analyte, unit) pair is computed once and cached, so the per-value cost
is a dictionary look-up. An unknown unit or a unit of the wrong dimension raises
:class:`~leukos.errors.UnitError` naming the field, the unit and the units that would work.

References: UCUM (https://ucum.org/ucum).
"""

from __future__ import annotations

import math
import re
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from leukos.errors import ErrorDetail, ImplausibleValueError, UnitError

if TYPE_CHECKING:
    from leukos.knowledge import Analyte, KnowledgeBase

__all__ = ["UnitConverter", "converter_for", "normalise_unit", "parse_value_with_unit"]

_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
# x10E3/uL, x10^3/uL, ×10⁹/L, 10^9/L, 10E9/L, 10*9/L (with optional leading x/×/* and spaces)
_POWER_RE = re.compile(r"^\s*[x×*]?\s*10\s*(?:\^|\*|e|E|\*\*)?\s*(\d{1,2})\s*/\s*(.+?)\s*$")
_ANNOTATION_RE = re.compile(r"\{[^}]*\}")
_NUMBER_UNIT_RE = re.compile(r"^\s*([<>]=?)?\s*([-+]?(?:\d+(?:[.,]\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")

_registry_lock = threading.Lock()
_registry = None


def _ureg():
    """The UCUM-aware pint registry, built on first use (not at import time)."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                from ucumvert import PintUcumRegistry

                _registry = PintUcumRegistry()
    return _registry


def normalise_unit(text: str, aliases: dict[str, str] | None = None) -> str:
    """Turn a real-world unit spelling into UCUM text (not yet parsed).

    >>> normalise_unit("x10E3/uL")
    '10*3/uL'
    >>> normalise_unit("K/uL", {"K/uL": "10*3/uL"})
    '10*3/uL'
    """
    t = text.strip().replace("µ", "u").replace("μ", "u").translate(_SUPERSCRIPTS)
    if aliases:
        if t in aliases:
            return aliases[t]
        if text.strip() in aliases:
            return aliases[text.strip()]
    m = _POWER_RE.match(t)
    if m:
        rest = m.group(2).replace(" ", "")
        if aliases and rest in aliases:  # e.g. 10^3/cmm
            rest = aliases[rest].lstrip("/")
        return f"10*{m.group(1)}/{rest}"
    return t.replace(" ", "")


def parse_value_with_unit(text: str) -> tuple[float, str, str | None]:
    """Split ``"250 K/uL"`` or ``">1000 10*9/L"`` into (value, unit text, comparator).

    Raises ValueError if the text does not start with a number.
    """
    m = _NUMBER_UNIT_RE.match(text)
    if not m:
        raise ValueError(text)
    number = m.group(2).replace(",", ".")
    return float(number), m.group(3), m.group(1)


class UnitConverter:
    """Converts values to the canonical unit of an analyte, with dimension and plausibility checks."""

    def __init__(self, kb: KnowledgeBase):
        self._kb = kb
        self._aliases = dict(kb.unit_aliases)
        self._factor = lru_cache(maxsize=4096)(self._compute_factor)

    def canonical_unit(self, analyte: str) -> str:
        return self._kb.analyte(analyte).unit

    def factor(self, analyte: str, unit: str, *, field: str) -> float:
        """Multiplicative factor from ``unit`` to the analyte's canonical unit."""
        result = self._factor(analyte, unit)
        if isinstance(result, str):
            a = self._kb.analyte(analyte)
            raise UnitError(ErrorDetail(field, unit, f"a unit of {a.label.lower()} convertible to {a.unit}",
                                        result))
        return result

    def to_canonical(self, analyte: str, value: float, unit: str | None, *, field: str) -> float:
        """Convert ``value`` in ``unit`` (None or "" = already canonical) and check plausibility."""
        if unit is None or unit.strip() == "":
            canonical = float(value)
        else:
            canonical = float(value) * self.factor(analyte, unit, field=field + ".unit")
        self.check_plausible(analyte, canonical, field=field, given=(value, unit))
        return canonical

    def check_plausible(self, analyte: str, value: float, *, field: str, given=None) -> None:
        a = self._kb.analyte(analyte)
        low, high = a.plausible
        if math.isnan(value) or math.isinf(value):
            raise ImplausibleValueError(ErrorDetail(field, value, "a finite number", "give a number"))
        if low <= value <= high:
            return
        shown = value if given is None or not given[1] else f"{given[0]} {given[1]}"
        fix = f"check the value and its unit; the canonical unit is {a.unit}"
        if a.kind == "count" and value > high and low <= value / 1000 <= high:
            fix = (f"the value looks like cells per microlitre: give {value / 1000:g} (x10^9/L), "
                   f"or give the unit, e.g. {{value: {given[0] if given else value}, unit: \"/uL\"}}")
        elif a.kind == "percent" and 0 < value < 1 and low <= value * 100 <= high:
            fix = f"the value looks like a fraction: give {value * 100:g} (%), or the unit L/L"
        raise ImplausibleValueError(
            ErrorDetail(field, shown, f"{a.label.lower()} between {low:g} and {high:g} {a.unit} "
                                      "(a plausibility bound, not a reference range)", fix))

    def _compute_factor(self, analyte: str, unit: str) -> float | str:
        """Return the factor, or a message saying why the unit cannot be used."""
        from lark.exceptions import LarkError
        from pint.errors import DimensionalityError, PintError

        a: Analyte = self._kb.analyte(analyte)
        ucum = normalise_unit(unit, self._aliases)
        if "DDU" in unit.upper():
            return ("D-dimer must be in FEU (fibrinogen-equivalent units); DDU and FEU are not "
                    "interchangeable: ask the laboratory for the FEU result")
        if ucum.lower() in ("meq/l",):
            if a.valence:
                return 1.0 / a.valence if a.unit == "mmol/L" else _wrong(a)
            return _wrong(a)
        stripped = _ANNOTATION_RE.sub("", ucum) or "1"
        canon = _ANNOTATION_RE.sub("", a.unit) or "1"
        ureg = _ureg()
        try:
            q_from = ureg.from_ucum(stripped)
            q_to = ureg.from_ucum(canon)
            if not hasattr(q_from, "to"):
                raise ValueError(stripped)
        except (PintError, LarkError, ValueError, AttributeError):
            return f"'{unit}' is not a known unit; use UCUM (e.g. {_examples(a)})"
        try:
            return float((q_from / q_to).to("dimensionless").magnitude)
        except DimensionalityError:
            pass
        if a.molar_mass_g_per_mol:
            molar = ureg.from_ucum("g/mol") * a.molar_mass_g_per_mol
            try:
                return float((q_from / molar / q_to).to("dimensionless").magnitude)
            except DimensionalityError:
                pass
        return _wrong(a)


def _examples(a: Analyte) -> str:
    return {
        "count": "10*9/L, 10*3/uL, K/uL, /uL",
        "percent": "%",
        "substance": f"{a.unit}" + (", mg/dL" if a.molar_mass_g_per_mol else ""),
        "mass": f"{a.unit}, mg/dL",
        "activity": "U/L",
        "time": "s",
        "ratio": "{INR} or no unit",
        "pressure": "mm[Hg], mmHg, kPa",
    }.get(a.kind, a.unit)


def _wrong(a: Analyte) -> str:
    return f"the unit has the wrong dimension for {a.label.lower()}; use one of: {_examples(a)}"


_CONVERTERS: dict[int, UnitConverter] = {}


def converter_for(kb: KnowledgeBase) -> UnitConverter:
    """The (cached) converter of a knowledge base, so that factors are computed once per process."""
    conv = _CONVERTERS.get(id(kb))
    if conv is None or conv._kb is not kb:
        if len(_CONVERTERS) >= 32:  # knowledge bases with overrides come and go in a server
            _CONVERTERS.clear()
        conv = _CONVERTERS[id(kb)] = UnitConverter(kb)
    return conv
