"""The registry's tables (SQLAlchemy 2 declarative models).

One row per thing recorded: a patient (pseudonymous id; the MRN only in its own column), an
episode, a time-stamped lab result in the canonical unit of its analyte, an assessment or plan as
issued (the output document and its ruleset version), a procedure as performed, its adverse
events, and CDS card feedback. ``procedures.version`` and ``patients.version`` are optimistic-
concurrency counters: an update names the version it read and fails with a conflict if another
writer changed the row since.

The schema is created and changed only by the Alembic migrations in ``registry/migrations``; a
test checks that these models and the migrated schema agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["Base", "Patient", "Episode", "LabResult", "IssuedAssessment", "IssuedPlan", "Procedure",
           "AdverseEvent", "Treatment", "CdsFeedback", "RegistryChange", "UtcDateTime"]


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the registry (a bug: times are UTC-aware)")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Patient(Base):
    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    mrn: Mapped[str | None] = mapped_column(String(64), unique=True)       # never logged, never exported by default
    fhir_patient_id: Mapped[str | None] = mapped_column(String(128), index=True, unique=True)  # one patient per id
    sex: Mapped[str | None] = mapped_column(String(16))
    age_years: Mapped[float | None] = mapped_column(Float)
    weight_kg: Mapped[float | None] = mapped_column(Float)
    height_cm: Mapped[float | None] = mapped_column(Float)
    diagnosis: Mapped[str | None] = mapped_column(String(32))
    ward: Mapped[str | None] = mapped_column(String(64))
    target_wbc_10e9_per_l: Mapped[float | None] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[dt.datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    episodes: Mapped[list[Episode]] = relationship(back_populates="patient", order_by="Episode.started_at")


class Episode(Base):
    __tablename__ = "episodes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)

    patient: Mapped[Patient] = relationship(back_populates="episodes")


class LabResult(Base):
    __tablename__ = "lab_results"
    __table_args__ = (
        UniqueConstraint("patient_id", "source_ref", name="uq_lab_source_ref"),
        Index("ix_lab_patient_analyte_time", "patient_id", "analyte", "taken_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    episode_id: Mapped[int | None] = mapped_column(ForeignKey("episodes.id", ondelete="SET NULL"))
    procedure_id: Mapped[int | None] = mapped_column(ForeignKey("procedures.id", ondelete="CASCADE"), index=True)
    role: Mapped[str | None] = mapped_column(String(16))          # pre / during / post for a procedure's counts
    analyte: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)                     # canonical unit of the analyte
    unit: Mapped[str] = mapped_column(String(32))
    given: Mapped[str] = mapped_column(String(64))                  # as entered: "250 K/uL"
    taken_at: Mapped[dt.datetime]
    source: Mapped[str] = mapped_column(String(16))                 # typed / fhir / screening
    source_ref: Mapped[str | None] = mapped_column(String(200))     # e.g. Observation/abc: makes imports idempotent
    recorded_at: Mapped[dt.datetime]
    recorded_by: Mapped[str | None] = mapped_column(String(64))


class _Issued:
    """An output document exactly as issued, with the versions that produced it."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[dt.datetime]
    ruleset_version: Mapped[str] = mapped_column(String(32))
    leukos_version: Mapped[str] = mapped_column(String(32))
    output: Mapped[dict[str, Any]]


class IssuedAssessment(_Issued, Base):
    __tablename__ = "assessments"


class IssuedPlan(_Issued, Base):
    __tablename__ = "plans"


class Procedure(Base):
    __tablename__ = "procedures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    episode_id: Mapped[int | None] = mapped_column(ForeignKey("episodes.id", ondelete="SET NULL"))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="SET NULL"))
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime]
    device: Mapped[str] = mapped_column(String(64))
    protocol: Mapped[str | None] = mapped_column(String(64))
    access: Mapped[str] = mapped_column(String(32))
    volume_processed_l: Mapped[float] = mapped_column(Float)
    run_time_min: Mapped[float] = mapped_column(Float)
    anticoagulant: Mapped[str] = mapped_column(String(32))
    inlet_ac_ratio: Mapped[float | None] = mapped_column(Float)
    ac_volume_ml: Mapped[float | None] = mapped_column(Float)
    calcium_given_mmol: Mapped[float | None] = mapped_column(Float)
    calcium_route: Mapped[str | None] = mapped_column(String(16))
    product_volume_ml: Mapped[float | None] = mapped_column(Float)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    interruptions: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    adverse_events: Mapped[list[AdverseEvent]] = relationship(cascade="all, delete-orphan", order_by="AdverseEvent.id")


class AdverseEvent(Base):
    __tablename__ = "adverse_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedures.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    scale: Mapped[str] = mapped_column(String(8))                   # WAA or CTCAE
    severity: Mapped[str] = mapped_column(String(16))               # mild/moderate/severe or grade 1-5
    action: Mapped[str | None] = mapped_column(Text)
    run_stopped: Mapped[bool] = mapped_column(Boolean, default=False)


class Treatment(Base):
    """Cytoreductive treatment given (hydroxyurea, induction chemotherapy, ...): marked on the course."""

    __tablename__ = "treatments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    agent: Mapped[str] = mapped_column(String(32))
    dose: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime]


class CdsFeedback(Base):
    __tablename__ = "cds_feedback"
    __table_args__ = (UniqueConstraint("service_id", "card", "outcome", "outcome_timestamp", name="uq_feedback"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[str] = mapped_column(String(64))
    card: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))                # accepted / overridden
    outcome_timestamp: Mapped[str] = mapped_column(String(40))
    override_reasons: Mapped[list[Any]]
    accepted_suggestions: Mapped[list[Any]]
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"))
    received_at: Mapped[dt.datetime]


class RegistryChange(Base):
    """One create or update of a registry record: when, who (the authenticated caller or the operating-system
    user), through which surface, what kind of change, which patient and row, and for an update the names of
    the fields that changed. Written in the transaction of the change, so the two commit or roll back together.

    Never values, free text, MRNs or tokens: the patient is its row id. ``patient_id`` is set to NULL (not
    deleted with the patient) so that the history of who changed what outlives an erased patient row."""

    __tablename__ = "registry_changes"
    __table_args__ = (CheckConstraint("surface IN ('api', 'web', 'cli')", name="ck_registry_changes_surface"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(128))                 # JWT iss, "api-token", "anonymous-dev", OS user
    surface: Mapped[str] = mapped_column(String(8))                 # api / web / cli
    action: Mapped[str] = mapped_column(String(32))                 # patient.add, procedure.update, ...
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), index=True)
    record_id: Mapped[int | None] = mapped_column(Integer)          # the row of the action's table, when one
    fields: Mapped[str | None] = mapped_column(Text)                # updates: names of the changed fields, comma-separated
