"""Value types of a leukapheresis or collection plan (docs/outputs.md, 'plan')."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from leukos.apheresis.model import PatientState, Session
from leukos.domain.assessment import jsonable

__all__ = ["PlanOptions", "ProcedureSettings", "ProcedurePlan", "GOALS", "CALCIUM_MODES"]

GOALS = ("depletion", "stem-cells", "car-t")
CALCIUM_MODES = ("none", "gluconate_per_litre", "continuous")


def _frozen() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class PlanOptions:
    """What the user asks for. ``None`` means: use the knowledge-base default (shown in the output)."""

    goal: str = "depletion"
    blood_volumes: float | None = None
    volume_l: float | None = None
    device: str | None = None
    tbv_method: str | None = None
    ac_rate_ml_per_min_per_l_tbv: float | None = None
    inlet_to_ac_ratio: float | None = None
    calcium_prophylaxis: str | None = None
    liver_dysfunction: bool = False
    vascular_access: bool | None = None       # None = not recorded
    target_wbc_10e9_per_l: float | None = None
    # collections
    cd34_per_ul: float | None = None
    target_cd34_10e6_per_kg: float | None = None
    recipient_weight_kg: float | None = None
    cd3_per_ul: float | None = None
    target_cd3_10e9: float | None = None
    draws: int | None = None
    seed: int | None = None
    # a completed session of this patient: per-patient updating of the next session's prediction
    observed_pre_wbc_10e9_per_l: float | None = None
    observed_post_wbc_10e9_per_l: float | None = None
    observed_volume_l: float | None = None


@dataclass(frozen=True)
class ProcedureSettings:
    """Device settings and flows of one procedure, all derived in the planner (working shown there)."""

    device: str
    tbv_l: float
    weight_kg: float
    blood_volumes: float
    volume_to_process_l: float
    inlet_flow_ml_per_min: float
    inlet_to_ac_ratio: float
    acd_a_ml_per_min: float
    whole_blood_flow_ml_per_min: float
    duration_min: float
    collect_ml_per_min: float
    citrate_returned_mmol_per_min: float
    calcium_prophylaxis: str
    calcium_mmol_per_min: float

    def session(self, start_min: float = 0.0) -> Session:
        return Session(start_min=start_min, duration_min=self.duration_min,
                       q_wb_l_per_min=self.whole_blood_flow_ml_per_min / 1000.0,
                       q_ac_l_per_min=self.acd_a_ml_per_min / 1000.0,
                       q_collect_l_per_min=self.collect_ml_per_min / 1000.0,
                       citrate_mmol_per_min=self.citrate_returned_mmol_per_min,
                       calcium_mmol_per_min=self.calcium_mmol_per_min)

    def with_volume(self, blood_volumes: float) -> ProcedureSettings:
        """Same flows, a different volume processed (duration scales)."""
        vol = blood_volumes * self.tbv_l
        return replace(self, blood_volumes=blood_volumes, volume_to_process_l=vol,
                       duration_min=vol * 1000.0 / self.whole_blood_flow_ml_per_min)


@dataclass(frozen=True)
class ProcedurePlan:
    """A planned procedure: settings, predictions, safety checks, with the arithmetic shown."""

    goal: str
    case_id: str | None
    recommended: bool
    settings: ProcedureSettings
    patient: PatientState
    tbv_method: str
    diagnosis_group: str
    ecv_ml: float
    ecv_pct_tbv: float
    prime_with_rbc: bool
    citrate_mg_per_kg_per_min: float
    citrate_limit_mg_per_kg_per_min: float
    calcium_options: tuple[Mapping[str, Any], ...]
    predicted: Mapping[str, Any] = field(default_factory=_frozen)
    sessions_to_target: Mapping[str, Any] | None = None
    collection: Mapping[str, Any] | None = None
    patient_update: Mapping[str, Any] | None = None
    checklist: tuple[Mapping[str, Any], ...] = ()
    contraindications: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    unverified: tuple[str, ...] = ()
    working: Mapping[str, Any] = field(default_factory=_frozen)
    citations: tuple[str, ...] = ()
    leukos_version: str = ""
    ruleset_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        cal = next((o for o in self.calcium_options if o["mode"] == s.calcium_prophylaxis), {})
        return jsonable({
            "leukos_version": self.leukos_version,
            "ruleset_version": self.ruleset_version,
            "case_id": self.case_id,
            "goal": self.goal,
            "recommended": self.recommended,
            "contraindications": list(self.contraindications),
            "device": s.device,
            "tbv_l": round(s.tbv_l, 2),
            "tbv_method": self.tbv_method,
            "volume_to_process_l": round(s.volume_to_process_l, 2),
            "blood_volumes_processed": round(s.blood_volumes, 2),
            "inlet_flow_ml_per_min": round(s.inlet_flow_ml_per_min, 1),
            "inlet_to_ac_ratio": s.inlet_to_ac_ratio,
            "acd_a_ml_per_min": round(s.acd_a_ml_per_min, 2),
            "whole_blood_flow_ml_per_min": round(s.whole_blood_flow_ml_per_min, 1),
            "citrate_mg_per_kg_per_min": round(self.citrate_mg_per_kg_per_min, 2),
            "citrate_limit_mg_per_kg_per_min": round(self.citrate_limit_mg_per_kg_per_min, 2),
            "calcium_prophylaxis": {"selected": s.calcium_prophylaxis, **dict(cal),
                                    "options": [dict(o) for o in self.calcium_options]},
            "extracorporeal_volume_ml": round(self.ecv_ml),
            "ecv_pct_tbv": round(self.ecv_pct_tbv, 1),
            "prime_with_rbc": self.prime_with_rbc,
            "duration_min": round(s.duration_min),
            "collect_ml_per_min": s.collect_ml_per_min,
            "diagnosis_group": self.diagnosis_group,
            "predicted": dict(self.predicted),
            "sessions_to_target": None if self.sessions_to_target is None else dict(self.sessions_to_target),
            "collection": None if self.collection is None else dict(self.collection),
            "patient_update": None if self.patient_update is None else dict(self.patient_update),
            "checklist": [dict(c) for c in self.checklist],
            "warnings": list(self.warnings),
            "unverified": list(self.unverified),
            "working": dict(self.working),
            "citations": list(self.citations),
        })
