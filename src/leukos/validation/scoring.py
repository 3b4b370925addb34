"""Score assessments against a validation set: differential top-1/top-3, hyperleukocytosis,
leukostasis.

Definitions (documented in docs/validation.md):

* **Differential** is scored on *informative* cases only. Top-1 is correct when the first-ranked
  code is one of ``acceptable_codes``; top-3 when one of the first three is. A CML code matches
  any CML code (CML, CML_CP, CML_AP, CML_BP): the phase is reported by the CML entry, not scored
  here.
* **Hyperleukocytosis** agreement on every case whose expected flag is not null; a case where
  leukos cannot decide (no usable WBC) counts as a disagreement.
* **Leukostasis** sensitivity and specificity on the cases where the source said whether
  leukostasis was present (``leukostasis_described`` not null). Predicted positive means a
  leukostasis grade at or above ``leukostasis_min_grade`` (default 2, "probable": a software
  choice); an ungraded case counts as predicted negative.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from leukos.domain.assessment import Assessment
from leukos.knowledge import KnowledgeBase
from leukos.validation.dataset import ValidationCase

__all__ = ["CaseResult", "Rate", "ValidationReport", "score", "validate"]

_CML = frozenset({"CML", "CML_CP", "CML_AP", "CML_BP"})


def _family(code: str) -> str:
    return "CML" if code in _CML else code


def _match(code: str, accepted: Sequence[str]) -> bool:
    return _family(code) in {_family(c) for c in accepted}


@dataclass(frozen=True)
class Rate:
    hits: int
    total: int

    @property
    def fraction(self) -> float | None:
        return None if self.total == 0 else self.hits / self.total

    def describe(self) -> str:
        f = self.fraction
        return "n/a (0 cases)" if f is None else f"{self.hits}/{self.total} ({100 * f:.0f} %)"

    def to_dict(self) -> dict[str, Any]:
        return {"hits": self.hits, "total": self.total, "fraction": self.fraction}


@dataclass(frozen=True)
class CaseResult:
    """One case: what leukos ranked and how it compares with the reference answer."""

    id: str
    category: str
    informative: bool
    ranked: tuple[str, ...]
    acceptable: tuple[str, ...]
    other_matching: tuple[str, ...]
    top1: bool | None  # None: not scored (not informative)
    top3: bool | None
    hyperleukocytosis_expected: bool | None
    hyperleukocytosis_found: bool | None
    leukostasis_expected: bool | None
    leukostasis_grade: int | None

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class ValidationReport:
    cases: tuple[CaseResult, ...]
    top1: Rate
    top3: Rate
    by_category: Mapping[str, tuple[Rate, Rate]]
    hyperleukocytosis: Rate
    leukostasis_min_grade: int
    leukostasis_sensitivity: Rate
    leukostasis_specificity: Rate
    ruleset_version: str
    leukos_version: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def differential_misses(self) -> tuple[CaseResult, ...]:
        return tuple(c for c in self.cases if c.top1 is False)

    @property
    def hyperleukocytosis_misses(self) -> tuple[CaseResult, ...]:
        return tuple(c for c in self.cases if c.hyperleukocytosis_expected is not None
                     and c.hyperleukocytosis_found is not c.hyperleukocytosis_expected)

    @property
    def leukostasis_misses(self) -> tuple[CaseResult, ...]:
        return tuple(c for c in self.cases if c.leukostasis_expected is not None
                     and self.leukostasis_positive(c) is not c.leukostasis_expected)

    def leukostasis_positive(self, c: CaseResult) -> bool:
        return c.leukostasis_grade is not None and c.leukostasis_grade >= self.leukostasis_min_grade

    def to_dict(self) -> dict[str, Any]:
        return {
            "leukos_version": self.leukos_version,
            "ruleset_version": self.ruleset_version,
            "settings": dict(self.settings),
            "cases": len(self.cases),
            "informative_cases": self.top1.total,
            "differential": {
                "top1": self.top1.to_dict(),
                "top3": self.top3.to_dict(),
                "by_category": {k: {"top1": a.to_dict(), "top3": b.to_dict()} for k, (a, b) in self.by_category.items()},
            },
            "hyperleukocytosis_agreement": self.hyperleukocytosis.to_dict(),
            "leukostasis": {
                "positive_if_grade_at_least": self.leukostasis_min_grade,
                "sensitivity": self.leukostasis_sensitivity.to_dict(),
                "specificity": self.leukostasis_specificity.to_dict(),
            },
            "misses": {
                "differential": [c.to_dict() for c in self.differential_misses],
                "hyperleukocytosis": [c.to_dict() for c in self.hyperleukocytosis_misses],
                "leukostasis": [c.to_dict() for c in self.leukostasis_misses],
            },
            "per_case": [c.to_dict() for c in self.cases],
        }


def score(pairs: Sequence[tuple[ValidationCase, Assessment]], *, leukostasis_min_grade: int = 2,
          settings: Mapping[str, Any] | None = None) -> ValidationReport:
    """Compare each assessment with its case's reference answer.

    Parameters
    ----------
    pairs : sequence of (ValidationCase, Assessment)
        Each case with the assessment leukos made of it.
    leukostasis_min_grade : int
        Leukostasis grade (0-3) from which leukos counts as saying "leukostasis".
    settings : mapping, optional
        Knowledge-base overrides the assessments ran with (shown in the report).
    """
    results = []
    for vc, a in pairs:
        ex = vc.expected
        ranked = tuple(e.code for e in a.differential)
        top1 = top3 = None
        if ex.informative:
            top1 = bool(ranked) and _match(ranked[0], ex.acceptable_codes)
            top3 = any(_match(c, ex.acceptable_codes) for c in ranked[:3])
        results.append(CaseResult(
            id=vc.id, category=ex.category, informative=ex.informative, ranked=ranked,
            acceptable=ex.acceptable_codes, other_matching=ex.other_matching_codes, top1=top1, top3=top3,
            hyperleukocytosis_expected=ex.hyperleukocytosis, hyperleukocytosis_found=a.hyperleukocytosis.present,
            leukostasis_expected=ex.leukostasis_described, leukostasis_grade=a.leukostasis.grade,
        ))
    scored = [r for r in results if r.top1 is not None]
    cats: dict[str, tuple[Rate, Rate]] = {}
    for cat in sorted({r.category for r in scored}):
        rs = [r for r in scored if r.category == cat]
        cats[cat] = (Rate(sum(bool(r.top1) for r in rs), len(rs)), Rate(sum(bool(r.top3) for r in rs), len(rs)))
    hl = [r for r in results if r.hyperleukocytosis_expected is not None]

    def positive(r: CaseResult) -> bool:
        return r.leukostasis_grade is not None and r.leukostasis_grade >= leukostasis_min_grade

    pos = [r for r in results if r.leukostasis_expected is True]
    neg = [r for r in results if r.leukostasis_expected is False]
    first = pairs[0][1] if pairs else None
    return ValidationReport(
        cases=tuple(results),
        top1=Rate(sum(bool(r.top1) for r in scored), len(scored)),
        top3=Rate(sum(bool(r.top3) for r in scored), len(scored)),
        by_category=MappingProxyType(cats),
        hyperleukocytosis=Rate(sum(r.hyperleukocytosis_found is r.hyperleukocytosis_expected for r in hl), len(hl)),
        leukostasis_min_grade=leukostasis_min_grade,
        leukostasis_sensitivity=Rate(sum(positive(r) for r in pos), len(pos)),
        leukostasis_specificity=Rate(sum(not positive(r) for r in neg), len(neg)),
        ruleset_version=first.ruleset_version if first else "",
        leukos_version=first.leukos_version if first else "",
        settings=MappingProxyType(dict(settings or {})),
    )


def validate(cases: Sequence[ValidationCase], kb: KnowledgeBase, *, leukostasis_min_grade: int = 2,
             settings: Mapping[str, Any] | None = None) -> ValidationReport:
    """Assess every case with ``kb`` and score the assessments (see :func:`score`)."""
    from leukos.rules import assess

    return score([(vc, assess(vc.case, kb)) for vc in cases], leukostasis_min_grade=leukostasis_min_grade,
                 settings=settings)
