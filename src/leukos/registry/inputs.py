"""What the registry accepts, as pydantic models (the REST schema), and the checks beyond types.

Types and shapes are checked by pydantic; meaning (known analyte, a unit of the right dimension,
a plausible value, a volume the device can process, a post-count after the pre-count, a listed
access or adverse-event grade) by :func:`check_procedure` / :func:`canonical_lab`, which collect
every problem and raise one :class:`~leukos.errors.LeukosUserError` naming each field. Nothing is
written when any check fails.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    model_validator,
)

from leukos.errors import ErrorDetail, LeukosUserError, UnknownTermError
from leukos.knowledge import KnowledgeBase
from leukos.units import converter_for

__all__ = ["PatientIn", "PatientUpdate", "LabIn", "CountIn", "AdverseEventIn", "ProcedureIn", "ProcedureUpdate", "FeedbackIn", "TreatmentIn", "check_treatment",
           "parse", "canonical_lab", "check_procedure", "vocabulary", "SOURCES", "DIAGNOSES", "time_problems",
           "EARLIEST_TIME", "FUTURE_ALLOWANCE"]

SOURCES = ("typed", "fhir", "screening")
DIAGNOSES = ("AML", "APL", "ALL", "CML", "CLL", "other", "unknown")


def _not_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError("a number, not true/false")
    return v


Num = Annotated[float, BeforeValidator(_not_bool)]
Int = Annotated[int, BeforeValidator(_not_bool)]


def _no_nul(v: Any) -> Any:
    """PostgreSQL text cannot hold NUL characters (and no clinical text needs them)."""
    if isinstance(v, str) and "\x00" in v:
        raise ValueError("text without NUL (\\x00) characters")
    if isinstance(v, dict):
        return {k: _no_nul(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_no_nul(x) for x in v]
    return v


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _text_without_nul(cls, data: Any) -> Any:
        return _no_nul(data)


class _PatientFacts(_In):
    sex: Literal["male", "female"] | None = None
    age_years: Num | None = Field(None, ge=0, le=120)
    weight_kg: Num | None = Field(None, gt=0, le=400)
    height_cm: Num | None = Field(None, gt=30, le=250)
    diagnosis: Literal[DIAGNOSES] | None = None  # type: ignore[valid-type]
    ward: str | None = Field(None, max_length=64)
    target_wbc_10e9_per_l: Num | None = Field(None, gt=0, le=1000)


def _fhir_id(v: Any) -> Any:
    """A FHIR Patient id as a CDS call sends it (``context.patientId``): a FHIR id, else no call could match it."""
    from leukos.interop.patient_ref import FHIR_ID

    if isinstance(v, str) and not FHIR_ID.fullmatch(v.strip()):
        raise ValueError("a FHIR id: 1-64 characters A-Z, a-z, 0-9, '-' or '.' (the Patient resource's id, "
                         "not a URL, a path or the MRN)")
    return v


FhirId = Annotated[str, BeforeValidator(_fhir_id)]


class PatientIn(_PatientFacts):
    pseudonym: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
                                  description="Local pseudonymous id; generated when absent")
    mrn: str | None = Field(None, min_length=1, max_length=64, description="Hospital number: stored in its own column, never logged")
    fhir_patient_id: FhirId | None = Field(None, max_length=64, description="FHIR Patient id (links CDS Hooks calls and "
                                           "FHIR imports); one registered patient per id")


class PatientUpdate(_PatientFacts):
    version: Int = Field(..., ge=1, le=2**62, description="The version you read (optimistic concurrency)")
    active: StrictBool | None = None
    fhir_patient_id: FhirId | None = Field(None, max_length=64, description="FHIR Patient id (links CDS Hooks calls and "
                                           "FHIR imports); null removes the link")


class LabIn(_In):
    analyte: str = Field(..., description="An analyte of the leukos case format, e.g. wbc, platelets, ionized_calcium")
    value: Num
    unit: str | None = Field(None, description="Unit as reported (UCUM or a common spelling); none = canonical")
    taken_at: AwareDatetime
    source: Literal["typed", "fhir", "screening"] = "typed"
    source_ref: str | None = Field(None, max_length=200, description="Id in the source system: repeats are ignored")


class CountIn(_In):
    value: Num
    unit: str | None = None
    taken_at: AwareDatetime


class AdverseEventIn(_In):
    type: str = Field(..., description="blood_access, paraesthesia, hypocalcaemia, hypotension, urticaria, vasovagal, ...")
    scale: Literal["WAA", "CTCAE"]
    severity: str = Field(..., description="WAA: mild/moderate/severe; CTCAE: grade 1-5")
    action: str | None = Field(None, max_length=500)
    run_stopped: StrictBool = False


class ProcedureIn(_In):
    started_at: AwareDatetime
    ended_at: AwareDatetime
    device: str = Field("spectra_optia_wbcd", description="Device profile of the knowledge base")
    protocol: str | None = Field(None, max_length=64)
    access: str = Field(..., description="peripheral, cvc_jugular, cvc_subclavian, femoral, av_fistula")
    volume_processed_l: Num = Field(..., description="Whole blood processed (L)")
    run_time_min: Num | None = Field(None, description="Pump run time (min); default: end - start")
    anticoagulant: str = Field("acd_a", description="acd_a, heparin, acd_a_heparin")
    inlet_ac_ratio: Num | None = None
    ac_volume_ml: Num | None = None
    calcium_given_mmol: Num | None = None
    calcium_route: str | None = None
    product_volume_ml: Num | None = None
    pre_wbc: CountIn | None = None
    post_wbc: CountIn | None = None
    pre_platelets: CountIn | None = None
    post_platelets: CountIn | None = None
    ionized_calcium: list[CountIn] = Field(default_factory=list, description="iCa results during/after the run")
    interrupted: StrictBool = False
    interruptions: str | None = Field(None, max_length=1000)
    adverse_events: list[AdverseEventIn] = Field(default_factory=list)
    recorded_by: str = Field(..., min_length=1, max_length=64)
    notes: str | None = Field(None, max_length=2000)
    plan_id: Int | None = Field(None, ge=1, le=2**62)


class ProcedureUpdate(ProcedureIn):
    version: Int = Field(..., ge=1, le=2**62, description="The version you read (optimistic concurrency)")


class TreatmentIn(_In):
    agent: str = Field(..., description="hydroxyurea, induction_chemotherapy, corticosteroid_prephase, tyrosine_kinase_inhibitor, other")
    dose: str | None = Field(None, max_length=200, description="Dose and schedule as prescribed, e.g. '2 g twice daily'")
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    recorded_by: str = Field(..., min_length=1, max_length=64)


def check_treatment(t: TreatmentIn, kb: KnowledgeBase, *, now: dt.datetime) -> None:
    problems = time_problems([("started_at", t.started_at), ("ended_at", t.ended_at)], now)
    agents = vocabulary(kb, "cytoreduction")
    if t.agent not in agents:
        problems.append(ErrorDetail("agent", t.agent, f"one of {', '.join(agents)}", "choose a listed treatment"))
    if t.ended_at is not None and t.ended_at < t.started_at:
        problems.append(ErrorDetail("ended_at", t.ended_at.isoformat(), "not before started_at", "check the dates"))
    if problems:
        raise LeukosUserError(problems, title="The treatment cannot be saved")


class FeedbackIn(_In):
    card: str
    outcome: Literal["accepted", "overridden"]
    outcomeTimestamp: str
    overrideReasons: list[Any] = Field(default_factory=list)
    acceptedSuggestions: list[Any] = Field(default_factory=list)


def parse(model: type[_In], data: Any, *, prefix: str = "") -> Any:
    """Validate ``data`` into ``model``; pydantic's errors become one LeukosUserError naming each field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [ErrorDetail(prefix + ".".join(str(p) for p in e["loc"]), e.get("input") if not isinstance(e.get("input"), dict) else None,
                               e["msg"], "correct this field") for e in exc.errors()]
        raise LeukosUserError(details, title="The record does not have the expected fields") from None


def vocabulary(kb: KnowledgeBase, name: str) -> dict[str, str]:
    return {k: v for k, v in kb.table("followup")["vocabulary"][name].items() if k != "citations"}


def canonical_lab(kb: KnowledgeBase, analyte: str, value: float, unit: str | None, *, field: str) -> tuple[float, str, str]:
    """(value in the canonical unit, canonical unit, as given) or a user error naming ``field``."""
    if analyte not in kb.analytes:
        raise UnknownTermError(ErrorDetail(f"{field}.analyte" if field else "analyte", analyte,
                                           "an analyte of the leukos case format",
                                           f"use one of: {', '.join(sorted(kb.analytes))}"))
    a = kb.analyte(analyte)
    canonical = converter_for(kb).to_canonical(analyte, value, unit, field=f"{field}.value" if field else "value")
    given = f"{value:g}" + (f" {unit}" if unit else f" {a.unit}")
    return canonical, a.unit, given


# The plausible window of a recorded time. A SOFTWARE bound chosen for leukos, not a clinical threshold
# and not from a source: a time outside it is a typing, unit or clock error (a year 2062 for 2026, a
# device clock never set), and times at the ends of the calendar (year 1, year 9999) overflow the date
# arithmetic of the follow-up model. One day ahead of the server clock allows for time zones and for
# a lab system's clock that runs a little ahead. See docs/registry.md ("Times").
EARLIEST_TIME = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
FUTURE_ALLOWANCE = dt.timedelta(days=1)


def time_problems(times: list[tuple[str, dt.datetime | None]], now: dt.datetime) -> list[ErrorDetail]:
    """A problem for each (field, time) outside [EARLIEST_TIME, now + FUTURE_ALLOWANCE] (software window)."""
    latest = now + FUTURE_ALLOWANCE
    out = []
    for field, t in times:
        if t is not None and not EARLIEST_TIME <= t <= latest:
            out.append(ErrorDetail(
                field, t.isoformat(),
                f"a time from {EARLIEST_TIME:%Y-%m-%d} to at most one day after now ({latest:%Y-%m-%d %H:%M} UTC); "
                "a software plausibility window, not a clinical rule",
                "check the date and the year (and the device's or lab system's clock); give the time it was "
                "actually taken or done"))
    return out


def _procedure_times(p: ProcedureIn) -> list[tuple[str, dt.datetime | None]]:
    times: list[tuple[str, dt.datetime | None]] = [("started_at", p.started_at), ("ended_at", p.ended_at)]
    for name in ("pre_wbc", "post_wbc", "pre_platelets", "post_platelets"):
        c = getattr(p, name)
        times.append((f"{name}.taken_at", None if c is None else c.taken_at))
    times += [(f"ionized_calcium[{i}].taken_at", c.taken_at) for i, c in enumerate(p.ionized_calcium)]
    return times


def _in(problems: list[ErrorDetail], field: str, value: float | None, lo: float, hi: float, unit: str, fix: str,
        *, low_open: bool = False) -> None:
    if value is None:
        return
    ok = (lo < value if low_open else lo <= value) and value <= hi
    if not ok:
        problems.append(ErrorDetail(field, value, f"{'>' if low_open else '≥'} {lo:g} and ≤ {hi:g} {unit}", fix))


def check_procedure(p: ProcedureIn, kb: KnowledgeBase, *, now: dt.datetime) -> dict[str, tuple[float, str, str, dt.datetime]]:
    """Every semantic check of a procedure record; returns its counts in canonical units.

    ``now`` is the server's clock (the times must be in the plausible window, :func:`time_problems`).
    Raises LeukosUserError listing every problem (nothing is written then).
    """
    problems: list[ErrorDetail] = time_problems(_procedure_times(p), now)
    devices = kb.table("apheresis")["devices"]
    dev = devices.get(p.device)
    if dev is None:
        problems.append(ErrorDetail("device", p.device, f"a device profile: {', '.join(sorted(devices))}",
                                    "choose the profile of the separator used"))
    for name, value, vocab in (("access", p.access, "access"), ("anticoagulant", p.anticoagulant, "anticoagulant"),
                               ("calcium_route", p.calcium_route, "calcium_route")):
        allowed = vocabulary(kb, vocab)
        if value is not None and value not in allowed:
            problems.append(ErrorDetail(name, value, f"one of {', '.join(allowed)}", "choose a listed value"))
    elapsed = (p.ended_at - p.started_at).total_seconds() / 60.0
    if elapsed <= 0:
        problems.append(ErrorDetail("ended_at", p.ended_at.isoformat(), f"after started_at ({p.started_at.isoformat()})",
                                    "check the start and end times of the run"))
    if dev is not None:
        lo, hi = dev["wb_processed_range_ml"]
        _in(problems, "volume_processed_l", p.volume_processed_l, lo / 1000, hi / 1000, "L (the device's range)",
            "give the whole-blood volume processed in litres, from the device's end-of-run summary")
        lo_t, hi_t = dev["run_time_range_min"]
        run = p.run_time_min if p.run_time_min is not None else elapsed
        _in(problems, "run_time_min", run, 0, hi_t, "min (device maximum)", "give the pump run time in minutes",
            low_open=True)
        if p.run_time_min is not None and elapsed > 0 and p.run_time_min > elapsed + 1:
            problems.append(ErrorDetail("run_time_min", p.run_time_min, f"≤ the time between start and end ({elapsed:.0f} min)",
                                        "check the run time or the start and end times"))
        if p.inlet_ac_ratio is not None:
            r_lo, r_hi = dev.get("inlet_ac_ratio_range", [dev["inlet_ac_ratio"], dev["inlet_ac_ratio"]])
            _in(problems, "inlet_ac_ratio", p.inlet_ac_ratio, r_lo, r_hi, "(inlet:AC, the device's range)",
                "give the inlet:anticoagulant ratio set on the device")
    vol_ml = p.volume_processed_l * 1000.0
    _in(problems, "ac_volume_ml", p.ac_volume_ml, 0, vol_ml, "mL (at most the volume processed)", "give the anticoagulant volume used", low_open=True)
    _in(problems, "product_volume_ml", p.product_volume_ml, 0, vol_ml, "mL (at most the volume processed)",
        "give the product (waste bag) volume in mL", low_open=True)
    if p.calcium_given_mmol is not None and not p.calcium_given_mmol >= 0:
        problems.append(ErrorDetail("calcium_given_mmol", p.calcium_given_mmol, "≥ 0 mmol", "give the calcium given in mmol"))
    if p.calcium_given_mmol and p.calcium_route is None:
        problems.append(ErrorDetail("calcium_route", None, "the route of the calcium given", "give iv, oral or in_return_line"))
    counts: dict[str, tuple[float, str, str, dt.datetime]] = {}
    for name, analyte in (("pre_wbc", "wbc"), ("post_wbc", "wbc"), ("pre_platelets", "platelets"),
                          ("post_platelets", "platelets")):
        c = getattr(p, name)
        if c is None:
            continue
        try:
            counts[name] = (*canonical_lab(kb, analyte, c.value, c.unit, field=name), c.taken_at)
        except LeukosUserError as exc:
            problems.extend(exc.details)
    for i, c in enumerate(p.ionized_calcium):
        try:
            counts[f"ionized_calcium[{i}]"] = (*canonical_lab(kb, "ionized_calcium", c.value, c.unit,
                                                              field=f"ionized_calcium[{i}]"), c.taken_at)
        except LeukosUserError as exc:
            problems.extend(exc.details)
    for kind in ("wbc", "platelets"):
        pre, post = getattr(p, f"pre_{kind}"), getattr(p, f"post_{kind}")
        if pre is not None and post is not None and post.taken_at <= pre.taken_at:
            problems.append(ErrorDetail(f"post_{kind}.taken_at", post.taken_at.isoformat(),
                                        f"after the pre-session count's time ({pre.taken_at.isoformat()})",
                                        "check the times of the pre and post counts"))
        if pre is not None and pre.taken_at > p.ended_at:
            problems.append(ErrorDetail(f"pre_{kind}.taken_at", pre.taken_at.isoformat(), "before the end of the run",
                                        "check the time of the pre-session count"))
        if post is not None and post.taken_at < p.started_at:
            problems.append(ErrorDetail(f"post_{kind}.taken_at", post.taken_at.isoformat(), "after the start of the run",
                                        "check the time of the post-session count"))
    types = vocabulary(kb, "adverse_event_type")
    for i, ae in enumerate(p.adverse_events):
        if ae.type not in types:
            problems.append(ErrorDetail(f"adverse_events[{i}].type", ae.type, f"one of {', '.join(types)}", "choose a listed type"))
        grades = vocabulary(kb, "severity_waa" if ae.scale == "WAA" else "severity_ctcae")
        if ae.severity not in grades:
            problems.append(ErrorDetail(f"adverse_events[{i}].severity", ae.severity,
                                        f"on the {ae.scale} scale one of {', '.join(grades)}", "grade on the scale named"))
    if problems:
        raise LeukosUserError(problems, title="The procedure record cannot be saved")
    return counts
