"""Rule definitions written once, as data-like predicates over named, unit-normalised inputs.

A definition says *which* input is compared with *which* knowledge parameter and *how*
(strict or inclusive, rise or fall from baseline, adult or child threshold, the laboratory's
reference limit); the numbers and their citations stay in the knowledge data. Two evaluators
read the same definition:

- :func:`evaluate` (here, plain Python): ``leukos.rules.assess`` on one case;
- ``leukos.screening.compile`` (an adapter): the same predicate as an ibis expression for
  DuckDB and Spark, over one row per episode.

The shared families: hyperleukocytosis present (:func:`hyperleukocytosis_present`), the
laboratory TLS criteria of Cairo-Bishop 2004 / Howard 2011 with the 25 % change, the child
thresholds, Howard's ionised calcium and the plasma-potassium preference
(:func:`tls_laboratory`), and possible pseudohyperkalaemia (:func:`pseudohyperkalaemia_possible`).

Every predicate is three-valued: True, False or None (cannot be decided: missing value,
censored result on the wrong side, unknown age where the thresholds differ).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, Union

from leukos.knowledge import KnowledgeBase
from leukos.rules._common import above_value, any3, threshold

__all__ = ["Compare", "AboveReference", "Change", "AnyOf", "ByAge", "Criterion", "CountRule", "Inputs",
           "Predicate", "Evaluator", "evaluate", "compile_predicate", "limit", "hyperleukocytosis_present", "tls_laboratory",
           "pseudohyperkalaemia_possible", "count_met", "params_of", "walk", "describe", "CaseInputs", "TLS_INPUTS"]


@dataclass(frozen=True)
class Compare:
    """``input op limit`` with the limit = knowledge parameter ``param`` in the input's canonical unit.

    A censored result (``>X``, ``<X``) is decided only when the censoring places it (see
    :func:`leukos.rules._common.above`).
    """

    input: str
    op: str  # ">", ">=", "<", "<="
    param: str
    analyte: str  # the analyte whose canonical unit the limit is converted to

    @property
    def met_when(self) -> str:
        return "above" if self.op in (">", ">=") else "below"

    @property
    def inclusive(self) -> bool:
        return self.op in (">=", "<=")


@dataclass(frozen=True)
class AboveReference:
    """``input`` above the upper reference limit the laboratory reported with it (None without one)."""

    input: str


@dataclass(frozen=True)
class Change:
    """A rise (or fall) of at least ``param`` (a fraction) from the baseline of ``input``.

    Baseline: the earliest value of the input's series. Without a baseline (one value only, or a
    baseline of 0) the change criterion is not met: the absolute criterion decides alone, as the
    source uses the change only where a baseline exists.
    """

    input: str
    param: str
    falling: bool = False


@dataclass(frozen=True)
class AnyOf:
    """Three-valued OR of its parts."""

    parts: tuple[Predicate, ...]


@dataclass(frozen=True)
class ByAge:
    """The adult or the child predicate by the patient's age group.

    Age unknown: ``when_unknown="agree"`` decides only where both predicates agree (else None);
    ``"adult"`` uses the adult predicate.
    """

    adult: Predicate
    child: Predicate
    when_unknown: str = "agree"


Predicate = Union[Compare, AboveReference, Change, AnyOf, ByAge]  # noqa: UP007 - a runtime alias


@dataclass(frozen=True)
class Criterion:
    """One named criterion: its predicate and the input that must be present for it to be assessed."""

    name: str
    input: str
    predicate: Predicate


@dataclass(frozen=True)
class CountRule:
    """At least ``min_met`` (a knowledge parameter) of the criteria met."""

    criteria: tuple[Criterion, ...]
    min_met_param: str


class Inputs(Protocol):
    """What an evaluator needs to know about one patient (assess) or one episode (screening)."""

    def value(self, name: str) -> tuple[float, str | None] | None:
        """(value in the canonical unit, comparator or None), or None when not measured."""

    def reference_high(self, name: str) -> float | None: ...

    def baseline(self, name: str) -> float | None:
        """The earliest value of the input's series when the series has more than one value."""

    def child(self) -> bool | None:
        """Is the patient a child (age below ``tumour_lysis.child_below_age``)? None when unknown."""


# Virtual inputs: a name -> the analytes that can give it, in order of preference.
TLS_INPUTS: Mapping[str, tuple[str, ...]] = {
    # A same-draw plasma or whole-blood potassium is free of in-vitro lysis: it is preferred.
    "potassium_tls": ("potassium_plasma", "potassium"),
}


def limit(kb: KnowledgeBase, p: Compare) -> float:
    """The limit of a comparison in the canonical unit (the more inclusive of a source's two printings)."""
    return threshold(kb, p.param, p.analyte, met_when=p.met_when)


Evaluator = Callable[[Inputs], Union[bool, None]]  # noqa: UP007 - a runtime alias


def evaluate(p: Predicate, inputs: Inputs, kb: KnowledgeBase) -> bool | None:
    """Evaluate a predicate in Python (the per-patient engine's evaluator): :func:`compile_predicate`
    of ``p`` (compiled once per knowledge base) applied to ``inputs``."""
    return kb.derived(("definitions.compiled", p), lambda kb: compile_predicate(p, kb))(inputs)


def compile_predicate(p: Predicate, kb: KnowledgeBase) -> Evaluator:
    """The predicate as a function of the inputs, with what depends on the knowledge alone (limits in
    the canonical unit, change fractions) read once. Three-valued like the predicate; every part of
    an :class:`AnyOf` is evaluated (no short cut), both sides of a :class:`ByAge` when the age is
    unknown."""
    if isinstance(p, Compare):
        name, lim = p.input, limit(kb, p)
        if p.met_when == "above":
            inclusive = p.inclusive

            def compare(inputs: Inputs) -> bool | None:
                got = inputs.value(name)
                return None if got is None else above_value(got[0], got[1], lim, inclusive)
            return compare
        not_inclusive = not p.inclusive

        def compare_below(inputs: Inputs) -> bool | None:
            got = inputs.value(name)
            if got is None:
                return None
            a = above_value(got[0], got[1], lim, not_inclusive)
            return None if a is None else not a
        return compare_below
    if isinstance(p, AboveReference):
        name = p.input

        def above_reference(inputs: Inputs) -> bool | None:
            got, ref = inputs.value(name), inputs.reference_high(name)
            if got is None or ref is None:
                return None
            return above_value(got[0], got[1], ref, False)
        return above_reference
    if isinstance(p, Change):
        name, frac, falling = p.input, float(kb.value(p.param)), p.falling

        def change(inputs: Inputs) -> bool | None:
            got, base = inputs.value(name), inputs.baseline(name)
            if got is None or base is None or base == 0:
                return False
            rel = (got[0] - base) / base
            return rel <= -frac if falling else rel >= frac
        return change
    if isinstance(p, AnyOf):
        parts = tuple(compile_predicate(x, kb) for x in p.parts)

        def any_of(inputs: Inputs) -> bool | None:
            return any3([f(inputs) for f in parts])
        return any_of
    if isinstance(p, ByAge):
        adult, child_rule, adult_when_unknown = compile_predicate(p.adult, kb), compile_predicate(p.child, kb), \
            p.when_unknown == "adult"

        def by_age(inputs: Inputs) -> bool | None:
            child = inputs.child()
            if child is True:
                return child_rule(inputs)
            if child is False or adult_when_unknown:
                return adult(inputs)
            a, c = adult(inputs), child_rule(inputs)
            return a if a == c else None
        return by_age
    raise TypeError(f"not a predicate: {p!r}")


def count_met(values: Mapping[str, bool | None], rule: CountRule, kb: KnowledgeBase) -> bool | None:
    """True with at least ``min_met`` criteria met; False when fewer could be met even if every
    undecided one were; else None."""
    n = int(kb.value(rule.min_met_param))
    met = sum(1 for v in values.values() if v is True)
    unknown = sum(1 for v in values.values() if v is None)
    if met >= n:
        return True
    if met + unknown < n:
        return False
    return None


def hyperleukocytosis_present() -> Compare:
    """WBC above ``hyperleukocytosis.wbc_threshold`` (strictly: "> 100 x10^9/L")."""
    return Compare("wbc", ">", "hyperleukocytosis.wbc_threshold", "wbc")


def tls_laboratory(kb: KnowledgeBase) -> CountRule:
    """The laboratory TLS criteria of the configured definition (``tumour_lysis.definition``).

    Cairo-Bishop 2004: >= limits (<= for calcium), or a 25 % rise (fall for calcium) from
    baseline; adult and child phosphate limits. Howard 2011: strict limits, no change rule,
    uric acid above the laboratory's upper limit for a child, total calcium or ionised calcium.
    """
    howard = kb.value("tumour_lysis.definition") == "howard"
    ge, le = (">", "<") if howard else (">=", "<=")
    k = "potassium_tls"
    if howard:
        uric: Predicate = ByAge(Compare("uric_acid", ge, "tumour_lysis.howard_uric_acid_min", "uric_acid"),
                                AboveReference("uric_acid"), when_unknown="adult")
        potassium: Predicate = Compare(k, ge, "tumour_lysis.potassium_min", "potassium")
        phosphate: Predicate = ByAge(Compare("phosphate", ge, "tumour_lysis.howard_phosphate_min_adult", "phosphate"),
                                     Compare("phosphate", ge, "tumour_lysis.phosphate_min_child", "phosphate"))
        calcium: Predicate = AnyOf((Compare("calcium", le, "tumour_lysis.calcium_max", "calcium"),
                                    Compare("ionized_calcium", le, "tumour_lysis.howard_ionized_calcium_max",
                                            "ionized_calcium")))
    else:
        change = "tumour_lysis.change_fraction"
        uric = AnyOf((Compare("uric_acid", ge, "tumour_lysis.uric_acid_min", "uric_acid"),
                      Change("uric_acid", change)))
        potassium = AnyOf((Compare(k, ge, "tumour_lysis.potassium_min", "potassium"), Change(k, change)))
        phosphate = AnyOf((ByAge(Compare("phosphate", ge, "tumour_lysis.phosphate_min_adult", "phosphate"),
                                 Compare("phosphate", ge, "tumour_lysis.phosphate_min_child", "phosphate")),
                           Change("phosphate", change)))
        calcium = AnyOf((Compare("calcium", le, "tumour_lysis.calcium_max", "calcium"),
                         Change("calcium", change, falling=True)))
    criteria = (Criterion("uric_acid", "uric_acid", uric), Criterion("potassium", k, potassium),
                Criterion("phosphate", "phosphate", phosphate), Criterion("calcium", "calcium", calcium))
    return CountRule(criteria, "tumour_lysis.laboratory_min_criteria")


def pseudohyperkalaemia_possible() -> Predicate:
    """With hyperleukocytosis and no same-draw plasma potassium: serum potassium at or above the
    TLS potassium criterion, or above the laboratory's upper reference limit."""
    return AnyOf((Compare("potassium", ">=", "tumour_lysis.potassium_min", "potassium"),
                  AboveReference("potassium")))


def describe(p: Predicate, kb: KnowledgeBase) -> str:
    """The predicate in words with its limits as the source prints them (for the working)."""
    if isinstance(p, Compare):
        prm = kb.param(p.param)
        also = f" ({prm.also[0]:g} {prm.also[1]})" if prm.also else ""
        return f"{_label(p.input, kb)} {p.op} {prm.value:g} {prm.unit}{also}"
    if isinstance(p, AboveReference):
        return f"{_label(p.input, kb)} above the laboratory's upper reference limit"
    if isinstance(p, Change):
        return f"a {float(kb.value(p.param)):.0%} {'fall' if p.falling else 'rise'} from baseline"
    if isinstance(p, AnyOf):
        return " or ".join(f"({describe(x, kb)})" if isinstance(x, ByAge) else describe(x, kb) for x in p.parts)
    if isinstance(p, ByAge):
        return f"adult: {describe(p.adult, kb)}; child: {describe(p.child, kb)}"
    raise TypeError(f"not a predicate: {p!r}")


def _label(name: str, kb: KnowledgeBase) -> str:
    options = TLS_INPUTS.get(name, (name,))
    if len(options) > 1:
        return " if measured, else ".join(kb.analyte(a).label for a in options)
    return kb.analyte(name).label


def walk(p: Predicate):
    """The predicate and all its parts, depth first."""
    yield p
    if isinstance(p, AnyOf):
        for part in p.parts:
            yield from walk(part)
    elif isinstance(p, ByAge):
        yield from walk(p.adult)
        yield from walk(p.child)


def params_of(p: Predicate) -> tuple[str, ...]:
    """The knowledge parameters a predicate reads (for the working and the citations)."""
    return tuple(dict.fromkeys(x.param for x in walk(p) if isinstance(x, Compare | Change)))


_UNSET = object()


class CaseInputs:
    """:class:`Inputs` of one case (the per-patient engine): the latest value of each analyte.

    One object per rule that evaluates definitions on the case; what it looks up (the analyte an
    input resolves to, its value, the age group) is looked up once."""

    def __init__(self, case, kb: KnowledgeBase):
        self.case, self.kb = case, kb
        self._resolved: dict[str, str] = {}
        self._labs: dict[str, object] = {}  # input -> its LabValue or None
        self._child: object = _UNSET

    def resolve(self, name: str) -> str:
        """The analyte a (possibly virtual) input reads: the first of its preferences the case has."""
        hit = self._resolved.get(name)
        if hit is None:
            options = TLS_INPUTS.get(name, (name,))
            hit = options[-1]
            for a in options:
                if self.case.lab(a) is not None:
                    hit = a
                    break
            self._resolved[name] = hit
        return hit

    def _lab(self, name: str):
        lv = self._labs.get(name, _UNSET)
        if lv is _UNSET:
            lv = self._labs[name] = self.case.lab(self.resolve(name))
        return lv

    def value(self, name: str) -> tuple[float, str | None] | None:
        lv = self._lab(name)
        return None if lv is None else (lv.value, lv.comparator)

    def reference_high(self, name: str) -> float | None:
        lv = self._lab(name)
        return None if lv is None else lv.reference_high

    def baseline(self, name: str) -> float | None:
        b = self.case.baseline(self.resolve(name))
        return None if b is None else b.value

    def child(self) -> bool | None:
        if self._child is _UNSET:
            age = self.case.age_years
            self._child = None if age is None else age < float(self.kb.value("tumour_lysis.child_below_age"))
        return self._child  # type: ignore[return-value]
