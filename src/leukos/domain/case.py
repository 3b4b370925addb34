"""The case: one patient at one moment (docs/case-format.md), frozen and validated.

All lab values are in the canonical unit of their analyte (knowledge/data/labs.toml); the
original spelling is kept in ``LabValue.given`` so that every output can show what it used.
``None`` always means *not recorded*, never *normal*.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, TypeVar

__all__ = [
    "Sex",
    "Diagnosis",
    "Immunophenotype",
    "GeneticResult",
    "LabValue",
    "age_at",
    "AGE_YEARS_MIN",
    "AGE_YEARS_MAX",
    "Patient",
    "SolidTumor",
    "Infection",
    "Smear",
    "Marrow",
    "TissueCytology",
    "Findings",
    "Case",
    "ORGANS",
]


class Sex(str, enum.Enum):
    FEMALE = "female"
    MALE = "male"


class Diagnosis(str, enum.Enum):
    """Diagnosis codes v1 (docs/case-format.md)."""

    AML = "AML"
    APL = "APL"
    ALL = "ALL"
    CML_CP = "CML_CP"
    CML_AP = "CML_AP"
    CML_BP = "CML_BP"
    CML = "CML"
    CLL = "CLL"
    CNL = "CNL"
    CMML = "CMML"
    OTHER_MPN = "OTHER_MPN"
    LEUKEMOID_REACTIVE = "LEUKEMOID_REACTIVE"
    LEUKEMOID_PARANEOPLASTIC = "LEUKEMOID_PARANEOPLASTIC"
    EMH = "EMH"
    LEUKEMIC_INFILTRATION = "LEUKEMIC_INFILTRATION"


class Immunophenotype(str, enum.Enum):
    MYELOID = "myeloid"
    MONOCYTIC = "monocytic"
    PROMYELOCYTIC = "promyelocytic"
    B_LYMPHOBLASTIC = "b_lymphoblastic"
    T_LYMPHOBLASTIC = "t_lymphoblastic"
    MATURE_B = "mature_b"
    MATURE_T = "mature_t"


class GeneticResult(str, enum.Enum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    UNKNOWN = "unknown"


GENES = ("bcr_abl1", "pml_rara", "csf3r", "flt3_itd", "kmt2a",
         # MPN drivers (PV/ET/PMF) and the aCML/CMML-associated genes (WHO 2022, ICC 2022)
         "jak2", "calr", "mpl", "setbp1", "asxl1")
ORGANS = ("pulmonary", "neurological", "other")


def age_at(birth_date: date, when: datetime) -> float:
    """A person's age in years at ``when`` (days / 365.25): the one definition every reader uses."""
    return (when.date() - birth_date).days / 365.25


# The ages in years a person can have: a birth date after the case's time (negative) or more than 130
# years before it is a slip in the record, never a child's or a very old patient's age. Software
# plausibility limits (status U: leukos' own choice), not clinical thresholds; the case format's
# patient.age_years has the same bounds (leukos.interop.schema).
AGE_YEARS_MIN = 0
AGE_YEARS_MAX = 130


@dataclass(frozen=True)
class LabValue:
    """One laboratory result in the canonical unit of its analyte."""

    analyte: str
    value: float
    unit: str
    given: str
    time: datetime | None = None
    comparator: str | None = None  # '<', '<=', '>', '>=' (e.g. '>' above the analyser's range)
    reference_low: float | None = None
    reference_high: float | None = None
    source: str = "case"
    # False when the input gave a bare number: it was read in the analyte's canonical unit (the
    # case-format contract) and the assessment says so.
    unit_given: bool = True

    def describe(self) -> str:
        comp = self.comparator or ""
        return f"{comp}{self.value:g} {self.unit}"

    def to_working(self, time_text: Callable[[datetime], str] | None = None) -> dict:
        """The value as the working shows it; ``time_text`` writes the time (default
        ``datetime.isoformat``; :meth:`Case.time_text` writes each time of a case once)."""
        d = {"value": self.value, "unit": self.unit, "given": self.given}
        if self.comparator:
            d["comparator"] = self.comparator
        if self.time:
            d["time"] = self.time.isoformat() if time_text is None else time_text(self.time)
        if self.reference_high is not None:
            d["reference_high"] = self.reference_high
        if self.reference_low is not None:
            d["reference_low"] = self.reference_low
        if self.source != "case":
            d["source"] = self.source
        return d


@dataclass(frozen=True)
class Patient:
    age_years: float | None = None
    birth_date: date | None = None
    sex: Sex | None = None
    weight_kg: float | None = None
    height_cm: float | None = None
    pregnant: bool | None = None


@dataclass(frozen=True)
class SolidTumor:
    present: bool | None = None
    site: str | None = None
    marrow_involvement: bool | None = None


@dataclass(frozen=True)
class Infection:
    present: bool | None = None
    organism: str | None = None


@dataclass(frozen=True)
class Smear:
    toxic_granulation: bool | None = None
    dohle_bodies: bool | None = None
    auer_rods: bool | None = None
    abnormal_promyelocytes: bool | None = None  # promyelocyte-rich smear / faggot cells (APL gate)
    dysgranulopoiesis: bool | None = None  # dysplastic neutrophils/precursors (aCML yes, CNL no)
    teardrop_cells: bool | None = None  # dacrocytes (myelofibrosis)
    leukoerythroblastosis: bool | None = None  # nucleated red cells + immature granulocytes in blood


@dataclass(frozen=True)
class Marrow:
    blasts_pct: float | None = None
    tumour_cells: bool | None = None
    fibrosis_grade: int | None = None  # reticulin/collagen fibrosis, grade 0-3 (MF-0 to MF-3)


@dataclass(frozen=True)
class TissueCytology:
    site: str | None = None
    blasts_pct: float | None = None
    trilineage_precursors: bool | None = None
    megakaryocytes: bool | None = None
    erythroid_precursors: bool | None = None
    immunophenotype: Immunophenotype | None = None


@dataclass(frozen=True)
class Findings:
    known_diagnosis: Diagnosis | None = None
    immunophenotype: Immunophenotype | None = None
    genetics: Mapping[str, GeneticResult] = field(default_factory=lambda: MappingProxyType({}))
    splenomegaly: bool | None = None
    hepatomegaly: bool | None = None
    lymphadenopathy: bool | None = None
    solid_tumor: SolidTumor = field(default_factory=SolidTumor)
    cytokines: Mapping[str, float | None] = field(default_factory=lambda: MappingProxyType({}))
    infection: Infection = field(default_factory=Infection)
    drugs: tuple[str, ...] | None = None
    smear: Smear = field(default_factory=Smear)
    lap_score: float | None = None
    marrow: Marrow = field(default_factory=Marrow)
    tissue_cytology: TissueCytology | None = None
    treatment: tuple[str, ...] | None = None

    def gene(self, name: str) -> GeneticResult:
        return self.genetics.get(name, GeneticResult.UNKNOWN)


_T = TypeVar("_T")


def _new_memo(case: Case) -> dict:
    return {}


@dataclass(frozen=True)
class Case:
    """One patient at one moment. Build it with :func:`leukos.interop.case_format.case_from_dict`."""

    id: str | None = None
    as_of: datetime | None = None
    patient: Patient = field(default_factory=Patient)
    labs: Mapping[str, tuple[LabValue, ...]] = field(default_factory=lambda: MappingProxyType({}))
    symptoms: tuple[str, ...] | None = None  # None = not recorded; () = recorded as none
    leukostasis_grades: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    findings: Findings = field(default_factory=Findings)
    source: str = "case"  # "case" (leukos case format) or "fhir"
    # What the importer did not use and why (e.g. "Observation/obs-7 ignored: entered-in-error").
    # Never identifiers of the patient; resource ids only.
    import_notes: tuple[str, ...] = ()

    def derived(self, key: Hashable, build: Callable[[Case], _T]) -> _T:
        """``build(self)``, computed once for this case object (it is frozen) and then reused.

        For what one assessment reads many times and that depends on the case alone (the lab values
        as intervals, a cell count derived from a percentage and the WBC). It lives and dies with
        this object, like :func:`functools.cached_property` (same storage: the instance dict, not a
        field, so equality, ``repr``, ``dataclasses.replace`` and the case's serialisations ignore
        it; a replaced case starts empty). ``key`` names the derivation: the same key must always
        mean the same ``build``. The result is shared: never mutate it.
        """
        try:  # an attribute read (the instance dict), not ``self.__dict__.get``: ~60 reads per assessment
            memo: dict[Hashable, Any] = self._derived  # type: ignore[attr-defined]
        except AttributeError:
            memo = self.__dict__.setdefault("_derived", {})
        try:
            return memo[key]
        except KeyError:
            return memo.setdefault(key, build(self))

    def time_text(self, t: datetime) -> str:
        """``t.isoformat()``, written once per time object of this case and then reused (one call's
        memo, in :meth:`derived`): the values of one draw share their time (the importers give them
        one object) and an assessment's working shows value times about fifteen times. Keyed by the
        object, which the memo keeps alive so that its id is never reused while the memo lives."""
        memo: dict[int, tuple[datetime, str]] = self.derived("case.time_text", _new_memo)
        hit = memo.get(id(t))
        if hit is None or hit[0] is not t:
            hit = memo[id(t)] = (t, t.isoformat())
        return hit[1]

    def lab(self, name: str) -> LabValue | None:
        """The current (latest) value of an analyte, or None if not recorded."""
        series = self.labs.get(name)
        return series[-1] if series else None

    def value(self, name: str) -> float | None:
        lv = self.lab(name)
        return None if lv is None else lv.value

    def series(self, name: str) -> tuple[LabValue, ...]:
        return self.labs.get(name, ())

    def baseline(self, name: str) -> LabValue | None:
        """The earliest value of a series with more than one value, else None."""
        series = self.labs.get(name, ())
        return series[0] if len(series) > 1 else None

    @property
    def diagnosis(self) -> Diagnosis | None:
        return self.findings.known_diagnosis

    @property
    def age_years(self) -> float | None:
        p = self.patient
        if p.age_years is not None:
            return p.age_years
        if p.birth_date is not None and self.as_of is not None:
            return age_at(p.birth_date, self.as_of)
        return None
