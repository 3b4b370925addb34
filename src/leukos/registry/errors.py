"""Registry errors: user errors (no traceback) with the HTTP status a surface should use."""

from __future__ import annotations

from leukos.errors import LeukosUserError

__all__ = ["UnknownRecordError", "ConflictError", "OverlapError", "MigrationBlockedError"]


class UnknownRecordError(LeukosUserError):
    """An unknown patient or procedure (HTTP 404, CLI exit 2)."""

    default_title = "Not found in the registry"
    status = 404


class ConflictError(LeukosUserError):
    """The record changed since the caller read it (HTTP 409, CLI exit 2): nothing was written."""

    default_title = "The record was changed by someone else"
    status = 409


class OverlapError(ConflictError):
    """A procedure overlapping one already recorded for the patient (HTTP 409, CLI exit 2): nothing written."""

    default_title = "A procedure of this patient is already recorded at this time"


class MigrationBlockedError(LeukosUserError):
    """The database holds data a schema migration cannot take as it is (e.g. two patients with one FHIR
    id before the unique index): nothing was changed; a person must correct the data first."""

    default_title = "The registry database cannot be upgraded until its data are corrected"
    status = 409
