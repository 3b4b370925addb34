"""The service's seam to the leukapheresis planner and simulator (``leukos.apheresis``).

The planner's API: ``plan_leukapheresis(case, PlanOptions, kb, assessment=None) -> ProcedurePlan``
(``to_dict()`` = outputs.md ``leukos plan``) and ``simulate(plan, params, times, ...) -> Trajectory``
(series of shape draws × times). This module maps the request options onto ``PlanOptions`` and
summarises a trajectory as outputs.md ``leukos simulate`` does (median and p05/p95 bands per series,
plus ``summarise`` of the same draws); it computes nothing clinical of its own. The lead may later
move ``leukos.cli.apheresis_render.trajectory_dict`` into the core and call it from both surfaces.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
    """outputs.md ``leukos plan --format json``."""
    from leukos.apheresis import plan_leukapheresis

    return plan_leukapheresis(case, _options(options), kb, assessment=assessment).to_dict()


def _series(x: np.ndarray | None) -> dict[str, list[float]] | None:
    if x is None:
        return None
    q = np.percentile(x, [5, 50, 95], axis=0)
    return {"p05": np.round(q[0], 3).tolist(), "median": np.round(q[1], 3).tolist(), "p95": np.round(q[2], 3).tolist()}


def simulate_dict(case: Case, options: dict[str, Any], kb: KnowledgeBase) -> dict:
    """outputs.md ``leukos simulate --format json`` for one session."""
    from leukos.apheresis import median_params, plan_leukapheresis, sample_params, simulate
    from leukos.apheresis.simulate import summarise

    p = plan_leukapheresis(case, _options(options), kb)
    draws = int(options.get("draws") or DEFAULT_DRAWS)
    hours_after = float(options.get("hours_after", 24.0))
    diag = case.diagnosis.value if case.diagnosis is not None else None
    params = (median_params(kb, diagnosis=diag, weight_kg=p.settings.weight_kg) if draws == 1
              else sample_params(kb, diagnosis=diag, weight_kg=p.settings.weight_kg, n=draws, seed=0,
                                 procedure=(p.settings, p.patient)))
    t_end = p.settings.duration_min + hours_after * 60.0
    times = np.unique(np.concatenate([np.linspace(0, t_end, SIM_POINTS), [p.settings.duration_min]]))
    tr = simulate(p, params, times)
    plan = p.to_dict()
    return {
        "leukos_version": plan.get("leukos_version"), "ruleset_version": plan.get("ruleset_version"),
        "case_id": case.id, "duration_min": round(p.settings.duration_min),
        "blood_volumes_processed": round(p.settings.blood_volumes, 2),
        "times_min": np.round(tr.times_min, 2).tolist(),
        "wbc_10e9_per_l": _series(tr.wbc_10e9_per_l),
        "ionized_calcium_mmol_per_l": _series(tr.ionized_calcium_mmol_per_l),
        "platelets_10e9_per_l": _series(tr.platelets_10e9_per_l),
        "product": {"volume_ml": _series(tr.product_volume_ml[:, -1:]),
                    "cells_10e9": _series(tr.product_cells_10e9[:, -1:])},
        # the predicted block from the same parameter draws as the course (as `leukos simulate`)
        "summary": summarise(p.settings, p.patient, params), "draws": tr.n_draws,
        "recommended": plan.get("recommended"), "contraindications": plan.get("contraindications", []),
        "warnings": plan.get("warnings", []), "citations": plan.get("citations", []),
    }
