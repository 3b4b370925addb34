"""A patient's course after leukapheresis, from stored history given as plain values.

``follow_up(patient, labs, sessions, now=..., kb=...) -> FollowUp``: the count trend, each
session's predicted vs observed fall, the per-patient update of the model's parameters carried
session to session and applied to the next session, and monitoring flags. Pure: no I/O, no
clock (``now`` is given), no database; the registry builds the inputs from its tables.

The prediction of session *k* uses what sessions 1..k-1 taught about this patient (the population
for session 1), the session's observed pre-count and the blood volumes actually processed; the
observed post-count then joins the patient's record. The model is the apheresis outcome model's
per-patient learning, reached through one adapter (:mod:`leukos.followup.model_update`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from leukos.apheresis import estimate_tbv
from leukos.domain.assessment import jsonable
from leukos.errors import LeukosUserError
from leukos.followup.flags import Flag, monitoring_flags
from leukos.followup.model_update import learn_and_predict
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
    fall_rate_before: Mapping[str, float] | None        # k per blood volume, before this session's update
    fall_rate_after: Mapping[str, float] | None         # ... and after it
    sessions_learned_from: int                          # recorded sessions behind the prediction / update
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


def _rate(b: Mapping[str, float]) -> str:
    return f"{b['median']:.2f}"


@dataclass(frozen=True)
class CourseModel:
    """The model part of the follow-up (no clock involved): per-session outcomes and the next session."""

    sessions: tuple[SessionOutcome, ...]
    next_session: NextSession | None
    working: tuple[str, ...]
    not_assessed: tuple[str, ...]
    warnings: tuple[str, ...]


_MODEL_VALUES = {"pre_wbc_10e9_per_l": ("the white cell count before a session", " ×10⁹/L"),
                 "post_wbc_10e9_per_l": ("the white cell count after a session", " ×10⁹/L"),
                 "blood_volumes": ("the blood volumes processed", " blood volumes")}


def model_refusal(exc: LeukosUserError) -> str:
    """The model's refusal of a stored course, in words (its field names are the model's, not the nurse's)."""
    reasons = []
    for d in exc.details:
        name = d.field.rsplit(".", 1)[-1]
        in_session = d.field.startswith("sessions[")
        if not in_session and name == "post_wbc_10e9_per_l":
            continue  # the next session is checked as a session from the latest count to itself: said once
        what, unit = _MODEL_VALUES.get(name, ("a recorded value", ""))
        if not in_session:
            what = {"pre_wbc_10e9_per_l": "a white cell count that a fall is predicted from"}.get(name, what)
        value = (f"{d.value:g}{unit}" if isinstance(d.value, (int, float)) and math.isfinite(d.value)
                 else "not a number")
        expected = d.expected.replace("a positive number", "more than 0").replace("TBV", "total blood volumes")
        reasons.append(f"{what} is {value}, and the model needs {expected}")
    return ("The predicted and observed falls and the next session could not be computed: " + "; ".join(reasons)
            + ". If a count was entered in error, have the record corrected.")


def course_model(patient: PatientFacts, labs: Sequence[LabPoint], sessions: Sequence[SessionRecord], *,
                 kb: KnowledgeBase) -> CourseModel:
    """Predicted vs observed fall per session, the per-patient update carried forward, the next session.

    Session *k* is predicted from the sessions before it (the population for session 1); its observed
    fall then joins what is known of the patient. Deterministic for given inputs (seeded draws), so a
    caller may cache it by its inputs.
    """
    sessions = sorted(sessions, key=lambda s: s.started_at)
    wbc = _series(labs, "wbc")
    working: list[str] = []
    not_assessed: list[str] = []
    outcomes: list[SessionOutcome] = []
    nxt: NextSession | None = None
    try:
        bv = estimate_tbv(weight_kg=patient.weight_kg, height_cm=patient.height_cm, sex=patient.sex,
                          age_years=patient.age_years, kb=kb)
    except LeukosUserError as exc:
        not_assessed.append("Predicted vs observed fall and the next-session prediction: "
                            + "; ".join(d.expected for d in exc.details))
        return CourseModel((), None, (), tuple(not_assessed), ())
    tbv = bv.tbv_l
    working.append(f"Blood volume {tbv:.2f} L ({bv.method.capitalize()} formula): volumes processed are counted in "
                   "blood volumes.")
    try:  # a stored value the model refuses (e.g. a count of 0) leaves the model part not assessed, with why
        observed: list[tuple[float, float, float]] = []
        before = None
        for k, s in enumerate(sessions, start=1):
            bvs = s.volume_processed_l / tbv
            if s.pre_wbc_10e9_per_l is None:
                outcomes.append(SessionOutcome(k, s.ref, s.started_at, None, s.post_wbc_10e9_per_l, None, None, None, None,
                                               len(observed), "pre-session count not recorded: not modelled"))
                working.append(f"Session {k}: no pre-session count; not modelled.")
                continue
            if not 0 < bvs <= 5:
                outcomes.append(SessionOutcome(k, s.ref, s.started_at, s.pre_wbc_10e9_per_l, s.post_wbc_10e9_per_l, None,
                                               None, None, None, len(observed),
                                               f"{bvs:.1f} blood volumes processed: outside the model's range"))
                continue
            learned = learn_and_predict(kb, diagnosis=patient.diagnosis, observed=observed,
                                        pre_wbc_10e9_per_l=s.pre_wbc_10e9_per_l, blood_volumes=bvs)
            pred = learned.pct_fall
            before = learned.fall_rate
            if s.post_wbc_10e9_per_l is None:
                outcomes.append(SessionOutcome(k, s.ref, s.started_at, s.pre_wbc_10e9_per_l, None, pred, None, before, None,
                                               len(observed), "post-session count not recorded: the model is not updated"))
                working.append(f"Session {k}: predicted {_pct(pred)}; observed: post-session count not recorded.")
                continue
            observed_pct = round(100.0 * (1.0 - s.post_wbc_10e9_per_l / s.pre_wbc_10e9_per_l), 1)
            observed.append((s.pre_wbc_10e9_per_l, s.post_wbc_10e9_per_l, bvs))
            after = learn_and_predict(kb, diagnosis=patient.diagnosis, observed=observed,
                                      pre_wbc_10e9_per_l=s.pre_wbc_10e9_per_l, blood_volumes=bvs).fall_rate
            outcomes.append(SessionOutcome(k, s.ref, s.started_at, s.pre_wbc_10e9_per_l, s.post_wbc_10e9_per_l, pred,
                                           observed_pct, before, after, len(observed), "model updated on this session"))
            working.append(f"Session {k}: predicted {_pct(pred)}, observed {observed_pct:.0f} % "
                           f"({s.pre_wbc_10e9_per_l:g} → {s.post_wbc_10e9_per_l:g} ×10⁹/L, {bvs:.2f} blood volumes); "
                           f"fall rate updated {_rate(before)} → {_rate(after)} per blood volume.")
        if wbc:
            last = wbc[-1]
            bvs = (sessions[-1].volume_processed_l / tbv) if sessions else float(kb.value("apheresis.blood_volumes_default"))
            bvs = min(max(bvs, 0.1), 5.0)
            learned = learn_and_predict(kb, diagnosis=patient.diagnosis, observed=observed,
                                        pre_wbc_10e9_per_l=last.value, blood_volumes=bvs)
            nxt = NextSession(number=len(sessions) + 1, from_wbc_10e9_per_l=last.value, from_time=last.taken_at,
                              volume_processed_l=round(bvs * tbv, 2), predicted_fall_pct=learned.pct_fall,
                              predicted_post_wbc_10e9_per_l=learned.end_of_run, updated_on_sessions=len(observed))
            basis = (f"this patient's {len(observed)} recorded session(s)" if observed
                     else "the population (no completed session yet)")
            working.append(f"Session {nxt.number} predicted {_pct(nxt.predicted_fall_pct)} from the latest count "
                           f"{last.value:g} ×10⁹/L with {bvs:.2f} blood volumes ({basis}).")
            working += [f"Model: {w}" for w in learned.working]
        else:
            not_assessed.append("Next-session prediction: no white cell count recorded.")
    except LeukosUserError as exc:
        return CourseModel((), None, tuple(working[:1]), (model_refusal(exc),), ())
    return CourseModel(sessions=tuple(outcomes), next_session=nxt, working=tuple(working),
                       not_assessed=tuple(not_assessed), warnings=())


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
