"""Registry operations: every write is one transaction; reads return plain dicts.

The :class:`Registry` is built on an engine (SQLite or PostgreSQL, :mod:`leukos.registry.db`) and
the knowledge base. Patients are addressed by their pseudonym. Bad input raises a
:class:`~leukos.errors.LeukosUserError` before anything is written; an unknown patient or
procedure raises :class:`UnknownRecordError`; an update that names a stale ``version`` raises
:class:`ConflictError`.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import secrets
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, bindparam, delete, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from leukos import __version__
from leukos.errors import ErrorDetail, LeukosUserError
from leukos.followup import (
    CourseModel,
    FollowUp,
    LabPoint,
    PatientFacts,
    SessionRecord,
    course_model,
    follow_up,
    monitoring_flags,
)
from leukos.followup.flags import next_session_due_at
from leukos.knowledge import KnowledgeBase
from leukos.registry.changes import Actor, MissingActorError
from leukos.registry.errors import ConflictError, OverlapError, UnknownRecordError
from leukos.registry.inputs import (
    FeedbackIn,
    LabIn,
    PatientIn,
    PatientUpdate,
    ProcedureIn,
    ProcedureUpdate,
    TreatmentIn,
    canonical_lab,
    check_procedure,
    check_treatment,
    time_problems,
)
from leukos.registry.models import (
    AdverseEvent,
    CdsFeedback,
    Episode,
    IssuedAssessment,
    IssuedPlan,
    LabResult,
    Patient,
    Procedure,
    RegistryChange,
    Treatment,
)

__all__ = ["Registry", "utcnow"]


def _find_by_fhir_id_sql(engine: Engine) -> tuple[str, Callable[[str], Any]]:
    """The follow-up card's lookup in ``engine``'s dialect, rendered once by SQLAlchemy from the model:
    its SQL, and a function giving the DBAPI parameters for one FHIR id (in the dialect's parameter
    style; the LIMIT is a parameter too)."""
    # LIMIT 2, not 1: a second row means two patients share the id (a database from before the unique
    # index of migration 0003), and then no patient may be picked.
    stmt = select(Patient.pseudonym).where(Patient.fhir_patient_id == bindparam("fhir_id")).limit(2)
    compiled = stmt.compile(dialect=engine.dialect)
    fixed = compiled.construct_params({"fhir_id": None})
    if compiled.positional:
        order = tuple(compiled.positiontup or ())

        def params(fhir_id: str) -> Any:
            return tuple(fhir_id if key == "fhir_id" else fixed[key] for key in order)
    else:
        def params(fhir_id: str) -> Any:
            return {**fixed, "fhir_id": fhir_id}
    return str(compiled), params


MONITORED = ("wbc", "platelets", "ionized_calcium")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _patient_dict(p: Patient) -> dict[str, Any]:
    """A patient as shown: the MRN is never part of it (ask ``identifiers`` explicitly)."""
    return {"pseudonym": p.pseudonym, "sex": p.sex, "age_years": p.age_years, "weight_kg": p.weight_kg,
            "height_cm": p.height_cm, "diagnosis": p.diagnosis, "ward": p.ward,
            "target_wbc_10e9_per_l": p.target_wbc_10e9_per_l, "active": p.active, "created_at": p.created_at,
            "has_mrn": p.mrn is not None, "fhir_patient_id": p.fhir_patient_id, "version": p.version}


def _lab_dict(r: Any) -> dict[str, Any]:
    return {"id": r.id, "analyte": r.analyte, "value": r.value, "unit": r.unit, "given": r.given,
            "taken_at": r.taken_at, "source": r.source, "procedure_id": r.procedure_id, "role": r.role}


def _treatment_dict(t: Any) -> dict[str, Any]:
    return {"id": t.id, "agent": t.agent, "dose": t.dose, "started_at": t.started_at, "ended_at": t.ended_at,
            "recorded_by": t.recorded_by}


def _procedure_dict(p: Procedure, counts: Sequence[Any] = ()) -> dict[str, Any]:
    d = {c: getattr(p, c) for c in ("id", "started_at", "ended_at", "device", "protocol", "access",
                                    "volume_processed_l", "run_time_min", "anticoagulant", "inlet_ac_ratio",
                                    "ac_volume_ml", "calcium_given_mmol", "calcium_route", "product_volume_ml",
                                    "interrupted", "interruptions", "notes", "recorded_by", "recorded_at", "version",
                                    "plan_id")}
    d["adverse_events"] = [{"type": a.type, "scale": a.scale, "severity": a.severity, "action": a.action,
                            "run_stopped": a.run_stopped} for a in p.adverse_events]
    for r in counts:
        if r.procedure_id == p.id and r.role in ("pre", "post"):
            d[f"{r.role}_{r.analyte}"] = {"value": r.value, "unit": r.unit, "taken_at": r.taken_at}
    d["ionized_calcium"] = [{"value": r.value, "unit": r.unit, "taken_at": r.taken_at}
                            for r in counts if r.procedure_id == p.id and r.analyte == "ionized_calcium"]
    return d


class Registry:
    """Patients, labs, procedures, issued outputs and CDS feedback on one database.

    Reads need nothing more; writes need an actor (:meth:`acting_as`), recorded with each change."""

    def __init__(self, engine: Engine, kb: KnowledgeBase, *, clock: Callable[[], dt.datetime] = utcnow,
                 actor: Actor | None = None):
        self.engine, self.kb, self.clock, self.actor = engine, kb, clock, actor
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._find_sql = _find_by_fhir_id_sql(engine)
        # the follow-up model (Monte Carlo) of a course, by its exact inputs: recomputed when anything changes
        self._models: dict[tuple, CourseModel] = {}
        self._models_lock = threading.Lock()

    def acting_as(self, actor: Actor) -> Registry:
        """This registry, writing as ``actor``: a shallow copy sharing the engine, sessions and model cache,
        so a service keeps one registry and binds each request's caller to it without a shared mutable field."""
        bound = copy.copy(self)
        bound.actor = actor
        return bound

    # -- helpers -------------------------------------------------------------------------------------

    def _changed(self, s: Session, action: str, patient_id: int | None, record_id: int | None = None,
                 fields: Iterable[str] | None = None) -> None:
        """Record one change in the writing transaction ``s``: it commits, or rolls back, with the change.
        Names only (the action, row ids, field names in alphabetical order), never values."""
        if self.actor is None:
            raise MissingActorError("a registry write needs an actor: call it on registry.acting_as(Actor(...))")
        s.add(RegistryChange(at=self.clock(), actor=self.actor.name, surface=self.actor.surface, action=action,
                             patient_id=patient_id, record_id=record_id,
                             fields=None if fields is None else ",".join(sorted(fields))))

    def _tx(self) -> Session:
        return self._sessions.begin()  # type: ignore[return-value]

    @staticmethod
    def _patient(s: Session, pseudonym: str) -> Patient:
        p = s.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
        if p is None:
            raise UnknownRecordError(ErrorDetail("patient", pseudonym, "the pseudonym of a registered patient",
                                                 "check the id, or register the patient first (leukos patient add)"))
        return p

    # -- patients ------------------------------------------------------------------------------------

    @staticmethod
    def _fhir_id_free(s: Session, fhir_patient_id: str | None, patient_id: int | None = None) -> None:
        """ConflictError if another patient is registered with this FHIR id (checked in the writing
        transaction; the unique index of migration 0003 is the backstop against a concurrent writer).
        The other patient is not named: the caller may not be allowed to know who it is."""
        if fhir_patient_id is None:
            return
        q = select(Patient.id).where(Patient.fhir_patient_id == fhir_patient_id)
        if patient_id is not None:
            q = q.where(Patient.id != patient_id)
        if s.scalar(q.limit(1)) is not None:
            raise _fhir_id_taken(fhir_patient_id)

    def add_patient(self, data: PatientIn) -> dict[str, Any]:
        pseudonym = data.pseudonym or f"P-{secrets.token_hex(4).upper()}"
        try:
            with self._tx() as s:
                self._fhir_id_free(s, data.fhir_patient_id)
                p = Patient(pseudonym=pseudonym, mrn=data.mrn, fhir_patient_id=data.fhir_patient_id, sex=data.sex,
                            age_years=data.age_years, weight_kg=data.weight_kg, height_cm=data.height_cm,
                            diagnosis=data.diagnosis, ward=data.ward, target_wbc_10e9_per_l=data.target_wbc_10e9_per_l,
                            active=True, created_at=self.clock(), version=1)
                s.add(p)
                s.flush()
                s.add(Episode(patient_id=p.id, started_at=p.created_at, reason="registered"))
                self._changed(s, "patient.add", p.id, p.id)
                return _patient_dict(p)
        except IntegrityError:
            if data.fhir_patient_id is not None and self._fhir_id_used(data.fhir_patient_id):
                raise _fhir_id_taken(data.fhir_patient_id) from None  # a concurrent registration won the race
            raise ConflictError(ErrorDetail("pseudonym / mrn", pseudonym, "a pseudonym and MRN not already registered",
                                            "look the patient up (leukos patient list) instead of adding them again")) from None

    def _fhir_id_used(self, fhir_patient_id: str) -> bool:
        with self._sessions() as s:
            return s.scalar(select(Patient.id).where(Patient.fhir_patient_id == fhir_patient_id).limit(1)) is not None

    def get_patient(self, pseudonym: str) -> dict[str, Any]:
        with self._sessions() as s:
            return _patient_dict(self._patient(s, pseudonym))

    def find_by_fhir_id(self, fhir_patient_id: str) -> str | None:
        """The pseudonym of the patient registered with this FHIR id, or None.

        Every CDS patient-view asks (the follow-up card), so this is one SELECT on a pooled DBAPI
        connection, its SQL rendered once for the database's dialect (:func:`_find_by_fhir_id_sql`):
        through an ORM session it cost ~0.5 ms a call, and on SQLite it began a write transaction
        (``BEGIN IMMEDIATE``, see :mod:`leukos.registry.db`) for one read. The connection goes back
        to the pool on close, which rolls back whatever the driver began. A database error is raised
        as SQLAlchemy's (:class:`~sqlalchemy.exc.DBAPIError`), as every other method raises it.

        Never picks one of several: if more than one patient has the id (a database from before
        the unique index), the answer is None and a warning is logged (no identifiers)."""
        sql, params = self._find_sql
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            try:
                cur.execute(sql, params(fhir_patient_id))
                rows = cur.fetchall()
            finally:
                cur.close()
        except dbapi_error as exc:  # the driver's error, raised as SQLAlchemy raises it (callers catch that)
            raise DBAPIError.instance(sql, None, exc, dbapi_error) from exc
        finally:
            raw.close()
        if len(rows) > 1:  # only in a database the unique index (migration 0003) has not reached
            logging.getLogger("leukos.registry").warning(
                "more than one registered patient has the FHIR id of a CDS call: no follow-up card given "
                "(correct the duplicate FHIR ids, then run 'leukos registry migrate')")
            return None
        return rows[0][0] if rows else None

    def update_patient(self, pseudonym: str, data: PatientUpdate) -> dict[str, Any]:
        changes = data.model_dump(exclude_unset=True, exclude={"version"})
        if changes.get("active", False) is None:
            del changes["active"]  # active is yes or no; null leaves it as it is
        try:
            with self._tx() as s:
                p = self._patient(s, pseudonym)
                if "fhir_patient_id" in changes:
                    self._fhir_id_free(s, changes["fhir_patient_id"], p.id)
                differ = [k for k, v in changes.items() if getattr(p, k) != v]
                res = s.execute(update(Patient).where(Patient.id == p.id, Patient.version == data.version)
                                .values(**changes, version=Patient.version + 1))
                if res.rowcount != 1:
                    raise ConflictError(ErrorDetail("version", data.version, f"the current version {p.version}",
                                                    "reload the patient, re-apply your change and save again"))
                self._changed(s, "patient.update", p.id, p.id, differ)
                s.refresh(p)
                return _patient_dict(p)
        except IntegrityError:  # the unique FHIR id: a concurrent writer took it after the check
            raise _fhir_id_taken(changes.get("fhir_patient_id")) from None

    def ward_list(self, *, page: int = 1, per_page: int = 50, ward: str | None = None,
                  active_only: bool = True) -> dict[str, Any]:
        """Active patients with their latest WBC (and time), next session due and flags; paginated."""
        if not 1 <= page <= 1_000_000 or not 1 <= per_page <= 500:
            raise UnknownRecordError(ErrorDetail("page / per_page", (page, per_page), "page 1-1,000,000, per_page 1-500",
                                                 "ask for an existing page"))
        now = self.clock()
        with self._sessions() as s:
            q = select(Patient)
            cq = select(func.count(Patient.id))
            if active_only:
                q, cq = q.where(Patient.active.is_(True)), cq.where(Patient.active.is_(True))
            if ward:
                q, cq = q.where(Patient.ward == ward), cq.where(Patient.ward == ward)
            total = s.scalar(cq) or 0
            patients = list(s.scalars(q.order_by(Patient.pseudonym).limit(per_page).offset((page - 1) * per_page)))
            ids = [p.id for p in patients]
            labs = s.execute(select(LabResult.patient_id, LabResult.analyte, LabResult.value, LabResult.unit,
                                    LabResult.taken_at, LabResult.source)
                             .where(LabResult.patient_id.in_(ids), LabResult.analyte.in_(MONITORED))).all() if ids else []
            procs = list(s.scalars(select(Procedure).where(Procedure.patient_id.in_(ids)))) if ids else []
            counts = s.execute(select(LabResult.procedure_id, LabResult.role, LabResult.analyte, LabResult.value,
                                      LabResult.taken_at)
                               .where(LabResult.patient_id.in_(ids), LabResult.procedure_id.is_not(None))).all() if ids else []
        # grouped once by patient and procedure: filtering every row for every patient was quadratic
        # (500 patients x 40 results: 11 s for one page)
        labs_of: dict[int, list[LabPoint]] = defaultdict(list)
        for r in labs:
            labs_of[r.patient_id].append(LabPoint(r.analyte, r.value, r.unit, r.taken_at, r.source))
        procs_of: dict[int, list[Procedure]] = defaultdict(list)
        for x in procs:
            procs_of[x.patient_id].append(x)
        counts_of: dict[int, list[Any]] = defaultdict(list)
        for r in counts:
            counts_of[r.procedure_id].append(r)
        rows = []
        for p in patients:
            pl = labs_of[p.id]
            mine = procs_of[p.id]
            ss = _sessions_of(mine, [r for x in mine for r in counts_of[x.id]])
            wbc = sorted((x for x in pl if x.analyte == "wbc"), key=lambda x: x.taken_at)
            target = p.target_wbc_10e9_per_l or float(self.kb.value("apheresis.target_wbc_10e9_per_l"))
            flags = monitoring_flags(pl, ss, now=now, target_wbc_10e9_per_l=target, kb=self.kb)
            rows.append({**_patient_dict(p), "latest_wbc": None if not wbc else {"value": wbc[-1].value, "unit": wbc[-1].unit,
                                                                                 "taken_at": wbc[-1].taken_at},
                         "sessions": len(ss), "next_session_due_at": None if any(f.code == "target_reached" for f in flags)
                         else next_session_due_at(ss, self.kb),
                         "flags": [{"code": f.code, "label": f.label, "detail": f.detail} for f in flags]})
        return {"page": page, "per_page": per_page, "total": total, "patients": rows}

    # -- labs ----------------------------------------------------------------------------------------

    def add_labs(self, pseudonym: str, labs: Iterable[LabIn], *, recorded_by: str | None = None) -> dict[str, int]:
        """Add lab results (canonical units); a repeated ``source_ref`` is skipped (idempotent import)."""
        return self._save_labs(pseudonym, list(labs), recorded_by, "labs.add")

    def import_labs(self, pseudonym: str, labs: Iterable[LabIn], *, recorded_by: str | None = None) -> dict[str, int]:
        """:meth:`add_labs` for the results read from a FHIR Bundle: the same checks and writes, recorded in
        the change history as an import (a repeat that adds nothing records nothing)."""
        return self._save_labs(pseudonym, list(labs), recorded_by, "labs.import")

    def _save_labs(self, pseudonym: str, labs: list[LabIn], recorded_by: str | None, action: str) -> dict[str, int]:
        rows = []
        problems = time_problems([(f"{lab.source_ref} (effective time)" if lab.source == "fhir" and lab.source_ref
                                   and lab.source_ref.startswith("Observation/") else f"labs[{i}].taken_at", lab.taken_at)
                                  for i, lab in enumerate(labs)], self.clock())
        for i, lab in enumerate(labs):
            try:
                rows.append((lab, *canonical_lab(self.kb, lab.analyte, lab.value, lab.unit, field=f"labs[{i}]")))
            except Exception as exc:  # LeukosUserError: collect all, write nothing
                if not isinstance(exc, LeukosUserError):
                    raise
                problems.extend(exc.details)
        if problems:
            raise LeukosUserError(problems, title="The lab results cannot be saved")
        try:
            return self._insert_labs(pseudonym, rows, labs, recorded_by, action)
        except IntegrityError:  # a concurrent import of the same source ids won the race: read again
            return self._insert_labs(pseudonym, rows, labs, recorded_by, action)

    def _insert_labs(self, pseudonym: str, rows: list, labs: list[LabIn], recorded_by: str | None,
                     action: str) -> dict[str, int]:
        now = self.clock()
        with self._tx() as s:
            p = self._patient(s, pseudonym)
            refs = {lab.source_ref for lab in labs if lab.source_ref}
            seen = set(s.scalars(select(LabResult.source_ref).where(LabResult.patient_id == p.id,
                                                                    LabResult.source_ref.in_(refs)))) if refs else set()
            added = 0
            for lab, value, unit, given in rows:
                if lab.source_ref and lab.source_ref in seen:
                    continue
                seen.add(lab.source_ref)
                s.add(LabResult(patient_id=p.id, analyte=lab.analyte, value=value, unit=unit, given=given,
                                taken_at=lab.taken_at, source=lab.source, source_ref=lab.source_ref, recorded_at=now,
                                recorded_by=recorded_by))
                added += 1
            if added:  # a repeated import changes nothing, so records nothing
                self._changed(s, action, p.id)
        return {"added": added, "already_present": len(rows) - added}

    # -- issued outputs ------------------------------------------------------------------------------

    def record_issued(self, pseudonym: str, kind: str, output: dict[str, Any]) -> int:
        """Store an assessment or plan exactly as issued (its JSON and ruleset version)."""
        model = {"assessment": IssuedAssessment, "plan": IssuedPlan}[kind]
        with self._tx() as s:
            p = self._patient(s, pseudonym)
            row = model(patient_id=p.id, issued_at=self.clock(), output=output,
                        ruleset_version=str(output.get("ruleset_version") or self.kb.ruleset_version),
                        leukos_version=str(output.get("leukos_version") or __version__))
            s.add(row)
            s.flush()
            self._changed(s, f"{kind}.issue", p.id, row.id)
            return row.id

    # -- procedures ----------------------------------------------------------------------------------

    def _write_counts(self, s: Session, p: Patient, proc: Procedure, counts: dict, by: str) -> None:
        now = self.clock()
        for name, (value, unit, given, at) in counts.items():
            role, analyte = ("during", "ionized_calcium") if name.startswith("ionized_calcium") else name.split("_", 1)
            s.add(LabResult(patient_id=p.id, procedure_id=proc.id, role=role, analyte=analyte, value=value, unit=unit,
                            given=given, taken_at=at, source="typed", recorded_at=now, recorded_by=by))

    @staticmethod
    def _check_plan(s: Session, p: Patient, plan_id: int | None) -> None:
        if plan_id is None:
            return
        plan = s.get(IssuedPlan, plan_id)
        if plan is None or plan.patient_id != p.id:
            raise UnknownRecordError(ErrorDetail("plan_id", plan_id, f"a plan issued for {p.pseudonym}",
                                                 "leave plan_id out, or give the number of one of this patient's plans"))

    @staticmethod
    def _check_overlap(s: Session, p: Patient, data: ProcedureIn, procedure_id: int | None = None) -> None:
        """One patient is on one device at a time: a run overlapping a recorded one is the same session
        sent twice (a form resubmitted) or a wrong time, and would count its fall twice in the follow-up."""
        start, end = _utc(data.started_at), _utc(data.ended_at)
        for other in s.execute(select(Procedure).where(Procedure.patient_id == p.id)).scalars():
            if other.id != procedure_id and _utc(other.started_at) < end and start < _utc(other.ended_at):
                raise OverlapError(ErrorDetail(
                    "started_at", data.started_at.isoformat(),
                    f"a time outside the procedure already recorded from {_utc(other.started_at):%Y-%m-%d %H:%M} "
                    f"to {_utc(other.ended_at):%H:%M} UTC",
                    "if this is that procedure, correct the record instead of adding it again; otherwise check the times"))

    def record_procedure(self, pseudonym: str, data: ProcedureIn) -> dict[str, Any]:
        counts = check_procedure(data, self.kb, now=self.clock())
        with self._tx() as s:
            p = self._patient(s, pseudonym)
            self._check_plan(s, p, data.plan_id)
            self._check_overlap(s, p, data)
            proc = Procedure(patient_id=p.id, recorded_at=self.clock(), version=1, **_procedure_fields(data))
            proc.adverse_events = [AdverseEvent(**ae.model_dump()) for ae in data.adverse_events]
            s.add(proc)
            s.flush()
            self._write_counts(s, p, proc, counts, data.recorded_by)
            self._changed(s, "procedure.record", p.id, proc.id)
            s.flush()
            rows = s.execute(select(LabResult).where(LabResult.procedure_id == proc.id)).scalars().all()
            return _procedure_dict(proc, rows)

    def update_procedure(self, pseudonym: str, procedure_id: int, data: ProcedureUpdate) -> dict[str, Any]:
        """Replace a procedure record; ``data.version`` must be the version read (else ConflictError)."""
        counts = check_procedure(data, self.kb, now=self.clock())
        with self._tx() as s:
            p = self._patient(s, pseudonym)
            proc = s.get(Procedure, procedure_id)
            if proc is None or proc.patient_id != p.id:
                raise UnknownRecordError(ErrorDetail("procedure", procedure_id, f"a procedure of patient {pseudonym}",
                                                     "check the procedure number"))
            self._check_plan(s, p, data.plan_id)
            self._check_overlap(s, p, data, procedure_id=proc.id)
            differ = _procedure_changes(s, proc, data, counts)
            res = s.execute(update(Procedure).where(Procedure.id == proc.id, Procedure.version == data.version)
                            .values(**_procedure_fields(data), version=Procedure.version + 1))
            if res.rowcount != 1:
                raise ConflictError(ErrorDetail("version", data.version, f"the current version {proc.version}",
                                                "reload the procedure record, re-apply your change and save again"))
            s.execute(delete(AdverseEvent).where(AdverseEvent.procedure_id == proc.id))
            s.execute(delete(LabResult).where(LabResult.procedure_id == proc.id))
            for ae in data.adverse_events:
                s.add(AdverseEvent(procedure_id=proc.id, **ae.model_dump()))
            self._write_counts(s, p, proc, counts, data.recorded_by)
            self._changed(s, "procedure.update", p.id, proc.id, differ)
            s.flush()
            s.expire(proc)
            rows = s.execute(select(LabResult).where(LabResult.procedure_id == proc.id)).scalars().all()
            return _procedure_dict(s.get(Procedure, proc.id), rows)

    def add_treatment(self, pseudonym: str, data: TreatmentIn) -> dict[str, Any]:
        check_treatment(data, self.kb, now=self.clock())
        with self._tx() as s:
            p = self._patient(s, pseudonym)
            t = Treatment(patient_id=p.id, agent=data.agent, dose=data.dose, started_at=data.started_at,
                          ended_at=data.ended_at, recorded_by=data.recorded_by, recorded_at=self.clock())
            s.add(t)
            s.flush()
            self._changed(s, "treatment.add", p.id, t.id)
            return _treatment_dict(t)

    # -- reads ---------------------------------------------------------------------------------------

    def timeline(self, pseudonym: str) -> dict[str, Any]:
        """The patient, every lab result (time order), every procedure with its counts and adverse events,
        and the assessments and plans issued (time and ruleset version)."""
        with self._sessions() as s:
            p = self._patient(s, pseudonym)
            labs = s.execute(select(LabResult.id, LabResult.analyte, LabResult.value, LabResult.unit, LabResult.given,
                                    LabResult.taken_at, LabResult.source, LabResult.procedure_id, LabResult.role)
                             .where(LabResult.patient_id == p.id).order_by(LabResult.taken_at)).all()
            procs = list(s.scalars(select(Procedure).options(selectinload(Procedure.adverse_events))
                                   .where(Procedure.patient_id == p.id).order_by(Procedure.started_at)))
            issued = [{"kind": kind, "id": r.id, "issued_at": r.issued_at, "ruleset_version": r.ruleset_version}
                      for kind, model in (("assessment", IssuedAssessment), ("plan", IssuedPlan))
                      for r in s.execute(select(model.id, model.issued_at, model.ruleset_version)
                                         .where(model.patient_id == p.id)).all()]
            treatments = [_treatment_dict(x) for x in s.scalars(
                select(Treatment).where(Treatment.patient_id == p.id).order_by(Treatment.started_at))]
            counts = [r for r in labs if r.procedure_id is not None]
            procedures = [_procedure_dict(x, [r for r in counts if r.procedure_id == x.id]) for x in procs]
            return {"patient": _patient_dict(p), "labs": [_lab_dict(r) for r in labs], "procedures": procedures,
                    "treatments": treatments, "issued": sorted(issued, key=lambda d: d["issued_at"])}

    def issued_output(self, pseudonym: str, kind: str, issued_id: int) -> dict[str, Any]:
        model = {"assessment": IssuedAssessment, "plan": IssuedPlan}[kind]
        with self._sessions() as s:
            p = self._patient(s, pseudonym)
            row = s.get(model, issued_id)
            if row is None or row.patient_id != p.id:
                raise UnknownRecordError(ErrorDetail(kind, issued_id, f"an {kind} issued for {pseudonym}", "check the number"))
            return {"issued_at": row.issued_at, "ruleset_version": row.ruleset_version, "output": row.output}

    def identifiers(self, pseudonym: str) -> dict[str, Any]:
        """The MRN and FHIR id (for the clinician who asks; never logged)."""
        with self._sessions() as s:
            p = self._patient(s, pseudonym)
            return {"pseudonym": p.pseudonym, "mrn": p.mrn, "fhir_patient_id": p.fhir_patient_id}

    def follow_up(self, pseudonym: str, *, now: dt.datetime | None = None) -> FollowUp:
        """The core follow-up (trend, predicted vs observed, next session, flags) of the stored course."""
        facts, labs, sessions = course_inputs(self.timeline(pseudonym))
        key = (facts, tuple(labs), tuple(sessions))
        model = self._models.get(key)
        if model is None:
            model = course_model(facts, labs, sessions, kb=self.kb)
            with self._models_lock:
                self._models[key] = model
                while len(self._models) > 256:
                    self._models.pop(next(iter(self._models)))
        return follow_up(facts, labs, sessions, now=now or self.clock(), kb=self.kb, model=model)

    # -- CDS feedback --------------------------------------------------------------------------------

    def add_feedback(self, service_id: str, item: FeedbackIn, *, fhir_patient_id: str | None = None) -> bool:
        """Store one card outcome; a repeat (same service, card, outcome, time) is a no-op (returns False)."""
        try:
            with self._tx() as s:
                pid = None
                if fhir_patient_id:
                    pid = s.scalar(select(Patient.id).where(Patient.fhir_patient_id == fhir_patient_id).limit(1))
                exists = s.scalar(select(CdsFeedback.id).where(
                    CdsFeedback.service_id == service_id, CdsFeedback.card == item.card,
                    CdsFeedback.outcome == item.outcome, CdsFeedback.outcome_timestamp == item.outcomeTimestamp))
                if exists is not None:
                    return False
                row = CdsFeedback(service_id=service_id, card=item.card, outcome=item.outcome,
                                  outcome_timestamp=item.outcomeTimestamp, override_reasons=list(item.overrideReasons),
                                  accepted_suggestions=list(item.acceptedSuggestions), patient_id=pid,
                                  received_at=self.clock())
                s.add(row)
                s.flush()
                self._changed(s, "feedback.add", pid, row.id)
                return True
        except IntegrityError:
            return False  # a concurrent identical report won the race: still idempotent

    def feedback_count(self) -> int:
        with self._sessions() as s:
            return s.scalar(select(func.count(CdsFeedback.id))) or 0

    # -- change history ------------------------------------------------------------------------------

    def changes(self, pseudonym: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        """The change history, newest first: every change, or one patient's. The patient is shown by its
        pseudonym (None once the patient row is gone); fields as a list of names. Not part of
        :meth:`timeline`, which every CDS patient-view reads through :meth:`follow_up`."""
        if not 1 <= limit <= CHANGES_MAX:
            raise LeukosUserError(ErrorDetail("--limit", limit, f"a number of changes from 1 to {CHANGES_MAX:,}",
                                              "give a number from 1 to 100,000 (default 50); narrow the list with --patient"))
        with self._sessions() as s:
            q = (select(RegistryChange, Patient.pseudonym).outerjoin(Patient, Patient.id == RegistryChange.patient_id)
                 .order_by(RegistryChange.id.desc()).limit(limit))
            if pseudonym is not None:
                q = q.where(RegistryChange.patient_id == self._patient(s, pseudonym).id)
            return [_change_dict(c, who) for c, who in s.execute(q).all()]


CHANGES_MAX = 100_000


def _change_dict(c: RegistryChange, pseudonym: str | None) -> dict[str, Any]:
    return {"id": c.id, "at": c.at, "actor": c.actor, "surface": c.surface, "action": c.action, "patient": pseudonym,
            "record_id": c.record_id, "fields": c.fields.split(",") if c.fields else []}


def _same(a: Any, b: Any) -> bool:
    """Equal as stored (SQLite gives times back without their zone: they are UTC)."""
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return _utc(a) == _utc(b)
    return a == b


def _count_key(role: str | None, analyte: str) -> str:
    return "ionized_calcium" if analyte == "ionized_calcium" else f"{role}_{analyte}"


def _procedure_changes(s: Session, proc: Procedure, data: ProcedureIn, counts: dict) -> list[str]:
    """The names of the fields a correction changes (the record's fields, its adverse events, its counts by
    name): what the change history says was changed, without the values."""
    changed = [k for k, v in _procedure_fields(data).items() if not _same(getattr(proc, k), v)]
    old_events = [(a.type, a.scale, a.severity, a.action, a.run_stopped) for a in proc.adverse_events]
    new_events = [(a.type, a.scale, a.severity, a.action, a.run_stopped) for a in data.adverse_events]
    if old_events != new_events:
        changed.append("adverse_events")
    old: dict[str, list] = defaultdict(list)
    for r in s.execute(select(LabResult).where(LabResult.procedure_id == proc.id)).scalars():
        old[_count_key(r.role, r.analyte)].append((r.value, r.unit, _utc(r.taken_at)))
    new: dict[str, list] = defaultdict(list)
    for name, (value, unit, _given, at) in counts.items():
        new["ionized_calcium" if name.startswith("ionized_calcium") else name].append((value, unit, _utc(at)))
    changed += sorted(k for k in old.keys() | new.keys() if sorted(old[k]) != sorted(new[k]))
    return changed


def _fhir_id_taken(fhir_patient_id: str | None) -> ConflictError:
    return ConflictError(ErrorDetail(
        "fhir_patient_id", fhir_patient_id, "a FHIR Patient id not registered for another patient (one patient per id)",
        "check the id against the EHR: it is already linked to another registered patient. If that link is wrong, "
        "correct the other patient's record first; if it is the same person, use that record instead of a new one"))


def _utc(t: dt.datetime) -> dt.datetime:
    """A stored or given time as UTC-aware (SQLite returns stored times without their zone: they are UTC)."""
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _procedure_fields(d: ProcedureIn) -> dict[str, Any]:
    run = d.run_time_min if d.run_time_min is not None else (d.ended_at - d.started_at).total_seconds() / 60.0
    return {"started_at": d.started_at, "ended_at": d.ended_at, "device": d.device, "protocol": d.protocol,
            "access": d.access, "volume_processed_l": d.volume_processed_l, "run_time_min": run,
            "anticoagulant": d.anticoagulant, "inlet_ac_ratio": d.inlet_ac_ratio, "ac_volume_ml": d.ac_volume_ml,
            "calcium_given_mmol": d.calcium_given_mmol, "calcium_route": d.calcium_route,
            "product_volume_ml": d.product_volume_ml, "interrupted": d.interrupted or bool(d.interruptions),
            "interruptions": d.interruptions, "notes": d.notes, "recorded_by": d.recorded_by, "plan_id": d.plan_id}


def _sessions_of(procs: Sequence[Procedure], counts: Sequence[Any]) -> list[SessionRecord]:
    out = []
    for x in procs:
        mine = {(r.role, r.analyte): r for r in counts if r.procedure_id == x.id and r.role in ("pre", "post")}
        pre, post = mine.get(("pre", "wbc")), mine.get(("post", "wbc"))
        out.append(SessionRecord(started_at=x.started_at, ended_at=x.ended_at, volume_processed_l=x.volume_processed_l,
                                 device=x.device, pre_wbc_10e9_per_l=pre.value if pre else None,
                                 pre_at=pre.taken_at if pre else None, post_wbc_10e9_per_l=post.value if post else None,
                                 post_at=post.taken_at if post else None, ref=str(x.id)))
    return out


def course_inputs(timeline: dict[str, Any]) -> tuple[PatientFacts, list[LabPoint], list[SessionRecord]]:
    """The core's plain inputs from a :meth:`Registry.timeline` document."""
    pt = timeline["patient"]
    facts = PatientFacts(weight_kg=pt["weight_kg"], height_cm=pt["height_cm"], sex=pt["sex"], age_years=pt["age_years"],
                         diagnosis=pt["diagnosis"], target_wbc_10e9_per_l=pt["target_wbc_10e9_per_l"])
    labs = [LabPoint(r["analyte"], r["value"], r["unit"], r["taken_at"], r["source"]) for r in timeline["labs"]]
    sessions = []
    for x in timeline["procedures"]:
        pre, post = x.get("pre_wbc"), x.get("post_wbc")
        sessions.append(SessionRecord(started_at=x["started_at"], ended_at=x["ended_at"],
                                      volume_processed_l=x["volume_processed_l"], device=x["device"],
                                      pre_wbc_10e9_per_l=pre["value"] if pre else None, pre_at=pre["taken_at"] if pre else None,
                                      post_wbc_10e9_per_l=post["value"] if post else None,
                                      post_at=post["taken_at"] if post else None, ref=str(x["id"])))
    return facts, labs, sessions
