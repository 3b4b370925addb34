"""Leukapheresis planning and simulation (the core: no I/O, no CLI/web imports).

``plan_leukapheresis(case, options, kb, assessment=None) -> ProcedurePlan`` and
``simulate(plan, params, times) -> Trajectory``; ``simulate_course(plan, kb, ...) -> SimulatedCourse``
(the course and its summary that every surface renders); the per-session WBC fall comes from the
outcome model validated leave-one-source-out (``rules/apheresis_outcome_fit.toml``,
``leukos calibrate --cv``); per-patient learning: ``update_patient_params`` and
``predict_next_session`` (``leukos.apheresis.patient``).
"""

from leukos.apheresis.blood_volume import BloodVolume, estimate_tbv, lemmens_tbv_l, nadler_tbv_l
from leukos.apheresis.course import SimulatedCourse, simulate_course
from leukos.apheresis.model import ModelParams, PatientState, Session
from leukos.apheresis.patient import (
    ObservedSession,
    PatientPosterior,
    PatientPrior,
    SessionPrediction,
    patient_prior,
    predict_next_session,
    update_patient_params,
)
from leukos.apheresis.plan import PlanOptions, ProcedurePlan, ProcedureSettings
from leukos.apheresis.planner import plan_leukapheresis
from leukos.apheresis.simulate import (
    Trajectory,
    median_params,
    sample_params,
    sessions_to_target,
    simulate,
)

__all__ = [
    "BloodVolume", "ModelParams", "ObservedSession", "PatientPosterior", "PatientPrior", "PatientState", "PlanOptions",
    "ProcedurePlan", "ProcedureSettings", "Session", "SessionPrediction", "SimulatedCourse", "Trajectory", "estimate_tbv", "lemmens_tbv_l",
    "median_params", "nadler_tbv_l", "patient_prior", "plan_leukapheresis", "predict_next_session", "sample_params",
    "sessions_to_target", "simulate", "simulate_course", "update_patient_params",
]
