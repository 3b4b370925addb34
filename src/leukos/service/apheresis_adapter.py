"""The service's seam to the leukapheresis planner and simulator (``leukos.apheresis``).

The planner's API: ``plan_leukapheresis(case, PlanOptions, kb, assessment=None) -> ProcedurePlan``
(``to_dict()`` = docs/outputs.md ``leukos plan``) and ``simulate(plan, params, times, ...) -> Trajectory``
(series of shape draws × times). This module maps the request options onto ``PlanOptions`` and
returns the core's ``simulate_course(...).to_dict()`` -- the same block as ``leukos simulate
--format json`` -- plus the plan's citations; it computes nothing clinical of its own.
"""

from __future__ import annotations

from typing import Any

from leukos.domain.assessment import Assessment
from leukos.domain.case import Case
from leukos.errors import ErrorDetail, LeukosUserError
from leukos.knowledge import KnowledgeBase

__all__ = ["plan_dict", "simulate_dict", "SIM_POINTS", "MAX_DRAWS"]

SIM_POINTS = 241  # time points of the curve (as the CLI)
MAX_DRAWS = 500  # a web request stays well under a second
DEFAULT_DRAWS = 200


def _options(options: dict[str, Any]):
    from leukos.apheresis import PlanOptions

    draws = options.get("draws")
    if draws is not None and not (1 <= draws <= MAX_DRAWS):
        raise LeukosUserError(ErrorDetail("draws", draws, f"1-{MAX_DRAWS}", f"use at most {MAX_DRAWS} draws on the web"))
    return PlanOptions(blood_volumes=options.get("blood_volumes"), volume_l=options.get("volume_l"),
                       draws=min(draws or DEFAULT_DRAWS, 400))


def plan_dict(case: Case, options: dict[str, Any], kb: KnowledgeBase, *, assessment: Assessment | None = None) -> dict:
    """docs/outputs.md ``leukos plan --format json``."""
    from leukos.apheresis import plan_leukapheresis

    return plan_leukapheresis(case, _options(options), kb, assessment=assessment).to_dict()


def simulate_dict(case: Case, options: dict[str, Any], kb: KnowledgeBase) -> dict:
    """docs/outputs.md ``leukos simulate --format json`` for one session (seed 0: a page reload shows the same course)."""
    from leukos.apheresis import plan_leukapheresis, simulate_course

    p = plan_leukapheresis(case, _options(options), kb)
    diag = case.diagnosis.value if case.diagnosis is not None else None
    course = simulate_course(p, kb, diagnosis=diag, draws=int(options.get("draws") or DEFAULT_DRAWS),
                             hours_after=float(options.get("hours_after", 24.0)), seed=0, points=SIM_POINTS)
    return course.to_dict() | {"citations": list(p.to_dict().get("citations", []))}
