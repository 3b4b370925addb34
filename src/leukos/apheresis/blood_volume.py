"""Total blood volume (TBV): Nadler, Lemmens and mL/kg by age.

Every estimate returns a :class:`BloodVolume` that shows its formula, inputs and citations.
Missing inputs raise :class:`~leukos.errors.LeukosUserError` naming what is missing and
which method could still run; nothing is assumed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from leukos.errors import ErrorDetail, LeukosUserError
from leukos.knowledge import KnowledgeBase

__all__ = ["BloodVolume", "estimate_tbv", "nadler_tbv_l", "lemmens_tbv_l", "ml_per_kg_tbv_l", "METHODS"]

METHODS = ("auto", "nadler", "lemmens", "ml_per_kg")


@dataclass(frozen=True)
class BloodVolume:
    """An estimate of total blood volume with its basis."""

    tbv_l: float
    method: str
    formula: str
    working: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    citations: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"tbv_l": round(self.tbv_l, 3), "method": self.method, "formula": self.formula,
                "working": dict(self.working), "citations": list(self.citations), "warnings": list(self.warnings)}


def nadler_tbv_l(height_m: float, weight_kg: float, sex: str, kb: KnowledgeBase) -> float:
    """Nadler 1962: TBV (L) = a·H³ + b·W + c with sex-specific coefficients.

    Parameters
    ----------
    height_m, weight_kg : float
        Height in metres, weight in kilograms.
    sex : {"male", "female"}

    References
    ----------
    Nadler SB, Hidalgo JH, Bloch T. Surgery 1962;51:224-32 (men 0.3669/0.03219/0.6041,
    women 0.3561/0.03308/0.1833).

    Examples
    --------
    >>> from leukos.knowledge import load_knowledge
    >>> round(nadler_tbv_l(1.75, 70, "male", load_knowledge()), 2)
    4.82
    """
    if sex not in ("male", "female"):
        raise ValueError(f"sex must be 'male' or 'female', not {sex!r}")
    a = kb.value(f"apheresis.nadler_{sex}_h3")
    b = kb.value(f"apheresis.nadler_{sex}_w")
    c = kb.value(f"apheresis.nadler_{sex}_c")
    return a * height_m**3 + b * weight_kg + c


def lemmens_tbv_l(height_m: float, weight_kg: float, kb: KnowledgeBase) -> float:
    """Lemmens 2006 for obesity: TBV = W × 70/√(BMI/22) mL/kg.

    Examples
    --------
    >>> from leukos.knowledge import load_knowledge
    >>> round(lemmens_tbv_l(1.80, 80, load_knowledge()), 2)   # closed form 70·√22·H·√W mL
    5.29
    """
    bmi = weight_kg / height_m**2
    indexed = kb.value("apheresis.lemmens_ml_per_kg_at_bmi22") / math.sqrt(bmi / kb.value("apheresis.lemmens_reference_bmi"))
    return weight_kg * indexed / 1000.0


def ml_per_kg_tbv_l(weight_kg: float, age_years: float | None, kb: KnowledgeBase) -> tuple[float, float, str]:
    """TBV from a mL/kg table by age band (scheme selectable; sources disagree, §1.4).

    Returns (tbv_l, ml_per_kg, band).
    """
    scheme = kb.value("apheresis.child_ml_per_kg_scheme")
    table = kb.table("apheresis")["child_ml_per_kg"][scheme]
    if age_years is None:
        band = "child"
    elif age_years <= table["neonate_max_age_years"]:
        band = "neonate"
    elif age_years >= 18:
        band = "adult"
    else:
        band = "child"
    ml = float(table[band])
    return weight_kg * ml / 1000.0, ml, band


def _missing(field_: str, expected: str, fix: str) -> ErrorDetail:
    return ErrorDetail(field_, None, expected, fix)


def estimate_tbv(*, weight_kg: float | None, height_cm: float | None, sex: str | None,
                 age_years: float | None, kb: KnowledgeBase, method: str | None = None) -> BloodVolume:
    """Estimate TBV with the configured or requested method.

    ``auto``: Lemmens if BMI ≥ 30, Nadler if weight > 35 kg, mL/kg by age below.

    Raises
    ------
    LeukosUserError
        Weight missing (every method needs it); height or sex missing for a method that
        needs them (the message names the method that could still run).
    """
    method = method or kb.value("apheresis.tbv_method")
    if method not in METHODS:
        raise LeukosUserError(ErrorDetail("tbv_method", method, f"one of {list(METHODS)}", "choose a listed method"))
    if weight_kg is None:
        raise LeukosUserError(_missing("patient.weight_kg", "the patient's weight in kg (every blood-volume method needs it)",
                                       "add patient.weight_kg to the case"), title="Blood volume cannot be estimated")
    if not (0.3 <= weight_kg <= 400):
        raise LeukosUserError(ErrorDetail("patient.weight_kg", weight_kg, "0.3-400 kg", "check the weight and its unit"))
    if height_cm is not None and not (25 <= height_cm <= 260):
        raise LeukosUserError(ErrorDetail("patient.height_cm", height_cm, "25-260 cm", "check the height and its unit"))
    min_w = kb.value("apheresis.nadler_min_weight_kg")
    h_m = None if height_cm is None else height_cm / 100.0
    bmi = None if h_m is None else weight_kg / h_m**2
    warnings: list[str] = []

    if method == "auto":
        if weight_kg <= min_w:
            method = "ml_per_kg"
        elif bmi is None or sex is None:
            need = "patient.height_cm" if bmi is None else "patient.sex"
            raise LeukosUserError(
                _missing(need, f"{need.split('.')[1]} for Nadler/Lemmens (weight {weight_kg:g} kg > {min_w} kg)",
                         f"add {need} to the case, or choose the mL/kg method explicitly "
                         "(tbv_method=ml_per_kg, less accurate in adults)"),
                title="Blood volume cannot be estimated")
        elif bmi >= kb.value("apheresis.lemmens_bmi_min"):
            method = "lemmens"
        else:
            method = "nadler"

    if method == "nadler":
        if h_m is None or sex is None:
            need = "patient.height_cm" if h_m is None else "patient.sex"
            raise LeukosUserError(_missing(need, "height and sex for Nadler",
                                           f"add {need}, or use tbv_method=ml_per_kg (needs weight only)"),
                                  title="Blood volume cannot be estimated")
        tbv = nadler_tbv_l(h_m, weight_kg, sex, kb)
        a, b, c = (kb.value(f"apheresis.nadler_{sex}_{k}") for k in ("h3", "w", "c"))
        if weight_kg <= min_w:
            warnings.append(f"Nadler is for adults and children > {min_w} kg; weight {weight_kg:g} kg.")
        return BloodVolume(tbv, "nadler", f"TBV = {a}·H³ + {b}·W + {c} ({sex})",
                           MappingProxyType({"height_m": h_m, "weight_kg": weight_kg, "sex": sex,
                                             "terms_l": [round(a * h_m**3, 4), round(b * weight_kg, 4), c],
                                             "bmi_kg_per_m2": round(bmi, 1)}),
                           ("nadler1962", "r_physiology"), tuple(warnings))
    if method == "lemmens":
        if h_m is None:
            raise LeukosUserError(_missing("patient.height_cm", "height for Lemmens (BMI)",
                                           "add patient.height_cm, or use tbv_method=ml_per_kg"),
                                  title="Blood volume cannot be estimated")
        tbv = lemmens_tbv_l(h_m, weight_kg, kb)
        ref = kb.value("apheresis.lemmens_reference_bmi")
        base = kb.value("apheresis.lemmens_ml_per_kg_at_bmi22")
        idx = base / math.sqrt(bmi / ref)
        return BloodVolume(tbv, "lemmens", f"TBV = W × {base}/√(BMI/{ref}) mL/kg",
                           MappingProxyType({"height_m": h_m, "weight_kg": weight_kg, "bmi_kg_per_m2": round(bmi, 1),
                                             "indexed_ml_per_kg": round(idx, 2)}),
                           ("lemmens2006", "r_physiology"), tuple(warnings))
    tbv, ml, band = ml_per_kg_tbv_l(weight_kg, age_years, kb)
    scheme = kb.value("apheresis.child_ml_per_kg_scheme")
    if age_years is None:
        warnings.append("Age not recorded: the 'child' mL/kg band was used.")
    if weight_kg > min_w:
        warnings.append(f"mL/kg estimate used for a {weight_kg:g} kg patient; Nadler/Lemmens are preferred above {min_w} kg.")
    cites = tuple(kb.table("apheresis")["child_ml_per_kg"][scheme]["citations"])
    return BloodVolume(tbv, "ml_per_kg", f"TBV = W × {ml:g} mL/kg ({band}, scheme {scheme})",
                       MappingProxyType({"weight_kg": weight_kg, "age_years": age_years, "band": band,
                                         "ml_per_kg": ml, "scheme": scheme}),
                       cites, tuple(warnings))
