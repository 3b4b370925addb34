"""A patient's course after leukapheresis, from stored history given as plain values.

``follow_up(patient, labs, sessions, now=..., kb=...) -> FollowUp``: the count trend, each
session's predicted vs observed fall, the per-patient update of the model's parameters carried
session to session and applied to the next session, and monitoring flags. Pure: no I/O, no
clock (``now`` is given), no database; the registry builds the inputs from its tables.

The prediction of session *k* uses the parameter draws updated on sessions 1..k-1 (the population
prior for session 1), the session's observed pre-count and the volume actually processed; the
observed post-count then updates the draws (:func:`leukos.followup.model_update.update_parameters`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from leukos.apheresis import PatientState, PlanOptions, estimate_tbv, sample_params, simulate
from leukos.apheresis.planner import procedure_settings
from leukos.apheresis.simulate import band
from leukos.domain.assessment import jsonable
from leukos.errors import LeukosUserError
from leukos.followup.flags import Flag, monitoring_flags
from leukos.followup.model_update import update_parameters
from leukos.knowledge import KnowledgeBase

__all__ = ["PatientFacts", "LabPoint", "SessionRecord", "SessionOutcome", "NextSession", "FollowUp", "CourseModel",
           "course_model", "follow_up"]


@dataclass(frozen=True)
class PatientFacts:
    weight_kg: float | None
    height_cm: float | None
    sex: str | None
    age_years: float | None
    diagnosis: str | None
    target_wbc_10e9_per_l: float | None = None


@dataclass(frozen=True)
class LabPoint:
    """One lab result in the canonical unit of its analyte (UTC-aware time)."""

    analyte: str
    value: float
    unit: str
    taken_at: dt.datetime
    source: str = "typed"


@dataclass(frozen=True)
class SessionRecord:
    """One performed leukapheresis, with its pre and post white cell counts (10⁹/L) if recorded."""

    started_at: dt.datetime
    ended_at: dt.datetime
    volume_processed_l: float
    device: str
    pre_wbc_10e9_per_l: float | None = None
    pre_at: dt.datetime | None = None
    post_wbc_10e9_per_l: float | None = None
    post_at: dt.datetime | None = None
    ref: str | None = None


@dataclass(frozen=True)
class SessionOutcome:
    number: int
    ref: str | None
    started_at: dt.datetime
    pre_wbc_10e9_per_l: float | None
    post_wbc_10e9_per_l: float | None
    predicted_fall_pct: Mapping[str, float] | None      # p05 / median / p95
    observed_fall_pct: float | None
    efficiency_before: Mapping[str, float] | None
    efficiency_after: Mapping[str, float] | None
    effective_sample_size: float | None
    note: str


@dataclass(frozen=True)
class NextSession:
    number: int
    from_wbc_10e9_per_l: float
    from_time: dt.datetime
    volume_processed_l: float
    predicted_fall_pct: Mapping[str, float]
    predicted_post_wbc_10e9_per_l: Mapping[str, float]
    updated_on_sessions: int


@dataclass(frozen=True)
class FollowUp:
    """What a clinician needs from the stored course: trend, sessions, next session, flags, working."""

    trend: Mapping[str, Any]
    sessions: tuple[SessionOutcome, ...]
    next_session: NextSession | None
    flags: tuple[Flag, ...]
    working: tuple[str, ...]
    not_assessed: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    citations: tuple[str, ...] = ()
    ruleset_version: str = ""
    as_of: dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "as_of": self.as_of, "ruleset_version": self.ruleset_version, "trend": dict(self.trend),
            "sessions": [s.__dict__ for s in self.sessions],
            "next_session": None if self.next_session is None else self.next_session.__dict__,
            "flags": [f.to_dict() for f in self.flags], "working": list(self.working),
            "not_assessed": list(self.not_assessed), "warnings": list(self.warnings),
            "citations": list(self.citations)})


def _series(labs: Sequence[LabPoint], analyte: str) -> list[LabPoint]:
    return sorted((x for x in labs if x.analyte == analyte), key=lambda x: x.taken_at)


def _latest_before(labs: Sequence[LabPoint], analyte: str, t: dt.datetime) -> float | None:
    before = [x for x in _series(labs, analyte) if x.taken_at <= t]
    return before[-1].value if before else None


def _trend(wbc: list[LabPoint]) -> dict[str, Any]:
    if not wbc:
        return {"points": [], "latest": None, "first": None, "change_pct": None}
    first, last = wbc[0], wbc[-1]
    return {"points": [{"time": p.taken_at, "value": p.value, "source": p.source} for p in wbc],
            "unit": last.unit, "first": {"time": first.taken_at, "value": first.value},
            "latest": {"time": last.taken_at, "value": last.value},
            "change_pct": round(100.0 * (last.value - first.value) / first.value, 1) if first.value > 0 else None}


def _pct(b: Mapping[str, float]) -> str:
    return f"{b['median']:.0f} % [{b['p05']:.0f}–{b['p95']:.0f}]"


def _eff(b: Mapping[str, float]) -> str:
    return f"{b['median']:.2f}"


@dataclass(frozen=True)
class CourseModel:
    """The model part of the follow-up (no clock involved): per-session outcomes and the next session."""

    sessions: tuple[SessionOutcome, ...]
    next_session: NextSession | None
    working: tuple[str, ...]
    not_assessed: tuple[str, ...]
    warnings: tuple[str, ...]


def course_model(patient: PatientFacts, labs: Sequence[LabPoint], sessions: Sequence[SessionRecord], *,
                 kb: KnowledgeBase) -> CourseModel:
    """Predicted vs observed fall per session, the per-patient update carried forward, the next session.

    Deterministic for given inputs (seeded draws), so a caller may cache it by its inputs.
    """
    sessions = sorted(sessions, key=lambda s: s.started_at)
    wbc = _series(labs, "wbc")
    working: list[str] = []
    not_assessed: list[str] = []
    warnings: list[str] = []
    outcomes: list[SessionOutcome] = []
    nxt: NextSession | None = None

    base = None
    try:
        bv = estimate_tbv(weight_kg=patient.weight_kg, height_cm=patient.height_cm, sex=patient.sex,
                          age_years=patient.age_years, kb=kb)
        device = str(kb.value("apheresis.device_default"))
        base, _ = procedure_settings(tbv_l=bv.tbv_l, weight_kg=float(patient.weight_kg), options=PlanOptions(), kb=kb,
                                     device_name=device, blood_volumes=float(kb.value("apheresis.blood_volumes_default")),
                                     bv_max=float(kb.value("apheresis.depletion_blood_volumes_max")))
        label = kb.table("apheresis")["devices"][device]["label"]
        working.append(f"Blood volume {bv.tbv_l:.2f} L ({bv.method.capitalize()} formula); flows of the {label} profile.")
    except LeukosUserError as exc:
        not_assessed.append("Predicted vs observed fall and the next-session prediction: "
                            + "; ".join(d.expected for d in exc.details))

    if base is not None:
        n = int(kb.value("followup.update_prior_draws"))
        params = sample_params(kb, diagnosis=patient.diagnosis, weight_kg=float(patient.weight_kg), n=n,
                               seed=int(kb.value("followup.update_seed")))
        updated = 0
        for k, s in enumerate(sessions, start=1):
            settings = base.with_volume(s.volume_processed_l / base.tbv_l)
            if s.pre_wbc_10e9_per_l is None:
                outcomes.append(SessionOutcome(k, s.ref, s.started_at, None, s.post_wbc_10e9_per_l, None, None, None, None,
                                               None, "pre-session count not recorded: not modelled"))
                working.append(f"Session {k}: no pre-session count; not modelled.")
                continue
            pat = _state(labs, s.started_at, s.pre_wbc_10e9_per_l, base.tbv_l, float(patient.weight_kg), kb)
            tr = simulate((settings, pat), params, np.array([settings.duration_min]))
            pred = band(100.0 * (1.0 - tr.wbc_10e9_per_l[:, -1] / s.pre_wbc_10e9_per_l))
            if s.post_wbc_10e9_per_l is None:
                outcomes.append(SessionOutcome(k, s.ref, s.started_at, s.pre_wbc_10e9_per_l, None, pred, None, None, None,
                                               None, "post-session count not recorded: the model is not updated"))
                working.append(f"Session {k}: predicted {_pct(pred)}; observed: post-session count not recorded.")
                continue
            observed = round(100.0 * (1.0 - s.post_wbc_10e9_per_l / s.pre_wbc_10e9_per_l), 1)
            try:
                up = update_parameters(settings, pat, params, observed_pre_10e9_per_l=s.pre_wbc_10e9_per_l,
                                       observed_post_10e9_per_l=s.post_wbc_10e9_per_l,
                                       volume_processed_l=s.volume_processed_l, kb=kb)
            except LeukosUserError as exc:
                outcomes.append(SessionOutcome(k, s.ref, s.started_at, s.pre_wbc_10e9_per_l, s.post_wbc_10e9_per_l, pred,
                                               observed, None, None, None, "not used for the update: " + exc.details[0].expected))
                continue
            params = up.posterior
            updated += 1
            warnings += [f"Session {k}: {w}" for w in up.warnings]
            outcomes.append(SessionOutcome(k, s.ref, s.started_at, s.pre_wbc_10e9_per_l, s.post_wbc_10e9_per_l, pred,
                                           observed, up.efficiency_before, up.efficiency_after,
                                           up.effective_sample_size, "model updated on this session"))
            working.append(f"Session {k}: predicted {_pct(pred)}, observed {observed:.0f} % "
                           f"({s.pre_wbc_10e9_per_l:g} → {s.post_wbc_10e9_per_l:g} ×10⁹/L, {s.volume_processed_l:g} L "
                           f"processed); efficiency updated {_eff(up.efficiency_before)} → {_eff(up.efficiency_after)}.")
        if wbc:
            last = wbc[-1]
            vol = sessions[-1].volume_processed_l if sessions else base.volume_to_process_l
            settings = base.with_volume(vol / base.tbv_l)
            pat = _state(labs, last.taken_at, last.value, base.tbv_l, float(patient.weight_kg), kb)
            tr = simulate((settings, pat), params, np.array([settings.duration_min]))
            post = tr.wbc_10e9_per_l[:, -1]
            nxt = NextSession(number=len(sessions) + 1, from_wbc_10e9_per_l=last.value, from_time=last.taken_at,
                              volume_processed_l=round(vol, 2), predicted_fall_pct=band(100.0 * (1.0 - post / last.value)),
                              predicted_post_wbc_10e9_per_l=band(post), updated_on_sessions=updated)
            basis = (f"parameters updated on {updated} session(s)" if updated else "population prior (no completed session yet)")
            working.append(f"Session {nxt.number} predicted {_pct(nxt.predicted_fall_pct)} from the latest count "
                           f"{last.value:g} ×10⁹/L with {vol:g} L processed ({basis}).")
        else:
            not_assessed.append("Next-session prediction: no white cell count recorded.")

    return CourseModel(sessions=tuple(outcomes), next_session=nxt, working=tuple(working),
                       not_assessed=tuple(not_assessed), warnings=tuple(dict.fromkeys(warnings)))


def follow_up(patient: PatientFacts, labs: Sequence[LabPoint], sessions: Sequence[SessionRecord], *,
              now: dt.datetime, kb: KnowledgeBase, model: CourseModel | None = None) -> FollowUp:
    """The follow-up of one patient (see the module docstring).

    Parameters
    ----------
    patient : PatientFacts
        Weight (and height/sex for the blood-volume formula) are needed for the model; without
        them the trend and flags are still given and the model part is reported as not assessed.
    labs : sequence of LabPoint
        Every stored lab result (canonical units), any order.
    sessions : sequence of SessionRecord
        The performed sessions, any order.
    now : datetime
        The time of reading (UTC-aware): flags such as "next session due" depend on it.
    model : CourseModel, optional
        :func:`course_model` of the same inputs, if the caller has it already (it is the costly part).
    """
    sessions = sorted(sessions, key=lambda s: s.started_at)
    wbc = _series(labs, "wbc")
    target = patient.target_wbc_10e9_per_l
    if target is None:
        target = float(kb.value("apheresis.target_wbc_10e9_per_l"))
    m = model if model is not None else course_model(patient, labs, sessions, kb=kb)
    flags = monitoring_flags(labs, sessions, now=now, target_wbc_10e9_per_l=target, kb=kb)
    citations = ["apheresis_md_derived", "leukos_operational"]
    for f in flags:
        citations += list(f.citations)
    return FollowUp(trend=_trend(wbc) | {"target_wbc_10e9_per_l": target}, sessions=m.sessions,
                    next_session=m.next_session, flags=flags, working=m.working, not_assessed=m.not_assessed,
                    warnings=m.warnings, citations=tuple(dict.fromkeys(citations)),
                    ruleset_version=kb.ruleset_version, as_of=now)


def _state(labs: Sequence[LabPoint], t: dt.datetime, wbc: float, tbv_l: float, weight_kg: float,
           kb: KnowledgeBase) -> PatientState:
    hct = _latest_before(labs, "hematocrit", t)
    ica = _latest_before(labs, "ionized_calcium", t)
    return PatientState(tbv_l=tbv_l, wbc_10e9_per_l=wbc, platelets_10e9_per_l=_latest_before(labs, "platelets", t),
                        hemoglobin_g_per_dl=_latest_before(labs, "hemoglobin", t),
                        hematocrit_fraction=None if hct is None else hct / 100.0,
                        ionized_calcium_mmol_per_l=ica if ica is not None else kb.value("apheresis.ica_baseline_default_mmol_per_l"),
                        citrate_basal_mmol_per_l=kb.value("apheresis.citrate_basal_mmol_per_l"), weight_kg=weight_kg)
