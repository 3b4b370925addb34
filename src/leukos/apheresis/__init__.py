"""Leukapheresis planning and simulation (the core: no I/O, no CLI/web imports).

``plan_leukapheresis(case, options, kb, assessment=None) -> ProcedurePlan`` and
``simulate(plan, params, times) -> Trajectory``; population priors come from
``knowledge/data/rules/apheresis_calibration.toml`` (``leukos calibrate``).
"""

from leukos.apheresis.blood_volume import BloodVolume, estimate_tbv, lemmens_tbv_l, nadler_tbv_l
from leukos.apheresis.model import ModelParams, PatientState, Session
from leukos.apheresis.plan import PlanOptions, ProcedurePlan, ProcedureSettings
from leukos.apheresis.planner import plan_leukapheresis
from leukos.apheresis.simulate import (
    PatientUpdate,
    Trajectory,
    median_params,
    sample_params,
    sessions_to_target,
    simulate,
    update_patient,
)

__all__ = [
    "BloodVolume", "ModelParams", "PatientState", "PatientUpdate", "PlanOptions", "ProcedurePlan",
    "ProcedureSettings", "Session", "Trajectory", "estimate_tbv", "lemmens_tbv_l", "median_params",
    "nadler_tbv_l", "plan_leukapheresis", "sample_params", "sessions_to_target", "simulate", "update_patient",
]
