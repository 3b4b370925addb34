"""THE one adapter between follow-up and the apheresis model's per-patient update.

Follow-up calls :func:`update_parameters` and nothing else of the update machinery, so that a
new per-patient update API of ``leukos.apheresis`` needs one edit here only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leukos.apheresis import ModelParams, PatientState, ProcedureSettings, update_patient
from leukos.knowledge import KnowledgeBase

__all__ = ["ParameterUpdate", "update_parameters"]


@dataclass(frozen=True)
class ParameterUpdate:
    """The patient's parameter draws after one observed session, with what changed."""

    posterior: ModelParams
    efficiency_before: Mapping[str, float]   # per-pass removal efficiency E0, p05/median/p95
    efficiency_after: Mapping[str, float]
    effective_sample_size: float
    warnings: tuple[str, ...]
    method: str


def update_parameters(settings: ProcedureSettings, patient: PatientState, prior: ModelParams, *,
                      observed_pre_10e9_per_l: float, observed_post_10e9_per_l: float,
                      volume_processed_l: float, kb: KnowledgeBase) -> ParameterUpdate:
    """Update ``prior`` (parameter draws of this patient) on one completed session."""
    up = update_patient(settings, patient, prior, observed_pre_10e9_per_l=observed_pre_10e9_per_l,
                        observed_post_10e9_per_l=observed_post_10e9_per_l, volume_processed_l=volume_processed_l,
                        log_sd=kb.value("apheresis.wbc_measurement_log_sd"),
                        interval_h=kb.value("apheresis.session_interval_h"),
                        seed=int(kb.value("apheresis.random_seed")))
    working: Mapping[str, Any] = up.working
    return ParameterUpdate(posterior=up.posterior, efficiency_before=dict(up.e0_prior),
                           efficiency_after=dict(up.e0_posterior), effective_sample_size=up.effective_sample_size,
                           warnings=tuple(up.warnings), method=str(working.get("method", "")))
