"""The seam between the service and the core: which verb functions answer which request.

The service calls the core only through an :class:`Engines` value, so that a test or a site can
inject other implementations, and so that a part of the core that is not in this build (the
leukapheresis planner lands separately) gives a clear 503 instead of a crash or an invented result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leukos.domain.assessment import Assessment
from leukos.domain.case import Case
from leukos.knowledge import KnowledgeBase

__all__ = ["Engines", "EngineUnavailable", "default_engines", "load_case"]

AssessFn = Callable[..., Assessment]  # (case, kb) -> Assessment; (case, kb, explain_differential=False) for the cards
PlanFn = Callable[..., Any]
SimulateFn = Callable[..., Any]


class EngineUnavailable(RuntimeError):
    """A part of the core that this build does not contain (HTTP 503, not a user error)."""

    def __init__(self, what: str, module: str):
        super().__init__(f"{what} is not available in this build of leukos (module {module} is missing)")
        self.what = what
        self.module = module


@dataclass(frozen=True)
class Engines:
    """Verb functions of the core used by the service; ``None`` = not in this build."""

    assess_fn: AssessFn | None
    plan_fn: PlanFn | None = None
    simulate_fn: SimulateFn | None = None

    def assess(self, case: Case, kb: KnowledgeBase, *, explain_differential: bool = True) -> Assessment:
        """``leukos.rules.assess``; ``explain_differential=False`` (the CDS cards) ranks the differential
        without explaining it: an assessment for the cards only, never an answer."""
        if self.assess_fn is None:
            raise EngineUnavailable("the assessment (leukos.rules.assess)", "leukos.rules.engine")
        if explain_differential:
            return self.assess_fn(case, kb)
        return self.assess_fn(case, kb, explain_differential=False)

    def plan(self, case: Case, options: dict[str, Any], kb: KnowledgeBase, assessment: Assessment | None) -> Any:
        """``leukos.apheresis.plan_leukapheresis(case, options, kb, assessment=...)``."""
        if self.plan_fn is None:
            raise EngineUnavailable("the leukapheresis planner (leukos.apheresis.plan_leukapheresis)",
                                    "leukos.apheresis")
        return self.plan_fn(case, options, kb, assessment=assessment)

    def simulate(self, case: Case, options: dict[str, Any], kb: KnowledgeBase) -> Any:
        """``leukos.apheresis.simulate`` for the volume and times asked in ``options``."""
        if self.simulate_fn is None:
            raise EngineUnavailable("the leukapheresis simulator (leukos.apheresis.simulate)", "leukos.apheresis")
        return self.simulate_fn(case, options, kb)

    @property
    def available(self) -> dict[str, bool]:
        return {"assess": self.assess_fn is not None, "plan": self.plan_fn is not None,
                "simulate": self.simulate_fn is not None}


def default_engines() -> Engines:
    """The core's own functions, each ``None`` if this build does not contain it."""
    try:
        from leukos.rules import assess
    except ImportError:
        assess = None
    plan = simulate = None
    try:
        from leukos.apheresis import PlanOptions, plan_leukapheresis  # noqa: F401
    except ImportError:
        pass
    else:
        from leukos.service.apheresis_adapter import plan_dict, simulate_dict
        plan, simulate = plan_dict, simulate_dict
    return Engines(assess_fn=assess, plan_fn=plan, simulate_fn=simulate)


def load_case(text: str | bytes, kb: KnowledgeBase, *, name: str) -> Case:
    """:func:`leukos.interop.case_format.load_case_text`, with a FHIR Bundle giving 503 (not 500) if the
    FHIR importer is not in this build."""
    from leukos.interop.case_format import load_case_text

    try:
        return load_case_text(text, kb, name=name)
    except ModuleNotFoundError as exc:
        if exc.name == "leukos.interop.fhir":
            raise EngineUnavailable("the FHIR importer (leukos.interop.fhir.case_from_fhir)", exc.name) from None
        raise
