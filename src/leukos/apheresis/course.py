"""One simulated course of leukapheresis, summarised once for every surface (pure computation).

``simulate_course(plan, kb, ...)`` draws the parameters, runs the simulator over the sessions and
the hours after, and returns a :class:`SimulatedCourse`: the trajectory (for charts) and
``to_dict()``, the block that ``leukos simulate --format json`` and ``POST /api/simulate`` both
return (docs/outputs.md): median and 5th/95th percentile series, the product, and the ``summary``
that matches the plan's ``predicted`` block (end of run and next morning). Surfaces render it;
none recomputes it.

Examples
--------
>>> from leukos.apheresis import PlanOptions, plan_leukapheresis, simulate_course  # doctest: +SKIP
>>> course = simulate_course(plan_leukapheresis(case, PlanOptions(), kb), kb, diagnosis="AML", draws=200)  # doctest: +SKIP
>>> course.to_dict()["summary"]["post_wbc_10e9_per_l"]  # doctest: +SKIP
{'p05': ..., 'median': ..., 'p95': ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from leukos.apheresis.model import ModelParams
from leukos.apheresis.plan import ProcedurePlan
from leukos.apheresis.simulate import Trajectory, band, median_params, sample_params, simulate, summarise
from leukos.knowledge import KnowledgeBase

__all__ = ["SimulatedCourse", "simulate_course", "COURSE_POINTS"]

COURSE_POINTS = 241  # evenly spaced time points of a course (plus the end of each session)


def _series(x: np.ndarray | None) -> dict[str, list[float]] | None:
    if x is None:
        return None
    q = np.percentile(x, [5, 50, 95], axis=0)
    return {"p05": np.round(q[0], 3).tolist(), "median": np.round(q[1], 3).tolist(), "p95": np.round(q[2], 3).tolist()}


@dataclass(frozen=True)
class SimulatedCourse:
    """A simulated course: the plan it follows, the parameter draws, the trajectory and its summary."""

    plan: ProcedurePlan
    params: ModelParams
    trajectory: Trajectory
    summary: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """docs/outputs.md ``leukos simulate --format json`` (plain values only)."""
        tr, p = self.trajectory, self.plan
        return {
            "leukos_version": p.leukos_version, "ruleset_version": p.ruleset_version, "case_id": p.case_id,
            "recommended": p.recommended, "contraindications": list(p.contraindications),
            "blood_volumes_processed": round(p.settings.blood_volumes, 2), "duration_min": round(p.settings.duration_min),
            "session_starts_min": list(tr.session_starts_min), "session_ends_min": [round(t, 1) for t in tr.session_ends_min],
            "times_min": np.round(tr.times_min, 2).tolist(),
            "wbc_10e9_per_l": _series(tr.wbc_10e9_per_l),
            "ionized_calcium_mmol_per_l": _series(tr.ionized_calcium_mmol_per_l),
            "platelets_10e9_per_l": _series(tr.platelets_10e9_per_l),
            "hemoglobin_g_per_dl": _series(tr.hemoglobin_g_per_dl),
            "product": {"volume_ml": band(tr.product_volume_ml[:, -1], digits=0),
                        "cells_10e9": band(tr.product_cells_10e9[:, -1], digits=0)},
            "draws": tr.n_draws,
            "warnings": list(p.warnings),
            "summary": dict(self.summary),
        }


def simulate_course(plan: ProcedurePlan, kb: KnowledgeBase, *, diagnosis: str | None, draws: int,
                    hours_after: float = 24.0, sessions: int = 1, seed: int | None = None,
                    points: int = COURSE_POINTS) -> SimulatedCourse:
    """Simulate ``sessions`` daily sessions of ``plan`` and ``hours_after`` hours after the last one.

    Parameters
    ----------
    plan : the procedure (``plan_leukapheresis``); its settings and patient state are simulated.
    diagnosis : diagnosis code for the disease-kinetics priors (None = unknown).
    draws : parameter draws; 1 = the median parameters only (deterministic).
    hours_after : follow-up after the end of the last session, hours.
    sessions : daily sessions, the interval from ``apheresis.session_interval_h``.
    seed : random seed of the parameter draws (None = fresh randomness).

    The summary uses the same parameter draws as the course, so the headline and the curves agree;
    it includes the next-morning count (``apheresis_outcomes.next_morning_hours_after_end``).
    The caller validates the options (the surfaces report bad ones as user errors).
    """
    s = plan.settings
    params = (median_params(kb, diagnosis=diagnosis, weight_kg=s.weight_kg) if draws == 1
              else sample_params(kb, diagnosis=diagnosis, weight_kg=s.weight_kg, n=draws, seed=seed,
                                 procedure=(s, plan.patient)))
    interval = kb.value("apheresis.session_interval_h") * 60.0
    t_end = (sessions - 1) * interval + s.duration_min + hours_after * 60.0
    times = np.unique(np.concatenate([np.linspace(0, t_end, points),
                                      [k * interval + s.duration_min for k in range(sessions)]]))
    tr = simulate(plan, params, times, n_sessions=sessions, interval_min=interval)
    summary = summarise(s, plan.patient, params,
                        next_morning_h=kb.value("apheresis_outcomes.next_morning_hours_after_end"))
    return SimulatedCourse(plan=plan, params=params, trajectory=tr, summary=summary)
