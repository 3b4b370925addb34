"""One registered patient per FHIR Patient id: the index on patients.fhir_patient_id becomes unique.

Two patients with the same FHIR id made the CDS patient-view follow-up card show one of them, picked
by the database, for the other; a FHIR import could not tell whose a Bundle was. Patients without a
FHIR id (NULL) are not affected: NULLs never collide in a unique index (SQLite and PostgreSQL).

A database that already holds duplicates is not changed: the upgrade stops with a message saying how
to find them (no identifiers are printed), and nothing is dropped or merged; a person decides which
record keeps the id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

from leukos.errors import ErrorDetail
from leukos.registry.errors import MigrationBlockedError

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

FIND_DUPLICATES = ("SELECT fhir_patient_id, pseudonym FROM patients WHERE fhir_patient_id IN "
                   "(SELECT fhir_patient_id FROM patients WHERE fhir_patient_id IS NOT NULL "
                   "GROUP BY fhir_patient_id HAVING count(*) > 1) ORDER BY fhir_patient_id")


def upgrade() -> None:
    shared = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM (SELECT fhir_patient_id FROM patients WHERE fhir_patient_id IS NOT NULL "
        "GROUP BY fhir_patient_id HAVING count(*) > 1) AS d")).scalar()
    if shared:
        raise MigrationBlockedError(ErrorDetail(
            "patients.fhir_patient_id", f"{shared} FHIR Patient id(s) registered for more than one patient",
            "each FHIR Patient id registered for one patient only (revision 0003 makes it unique)",
            f"list them with: {FIND_DUPLICATES}; set the wrong records' fhir_patient_id to NULL (or correct it), "
            "then run 'leukos registry migrate' again. Nothing was changed."))
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patients_fhir_patient_id'))
        batch_op.create_index(batch_op.f('ix_patients_fhir_patient_id'), ['fhir_patient_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patients_fhir_patient_id'))
        batch_op.create_index(batch_op.f('ix_patients_fhir_patient_id'), ['fhir_patient_id'], unique=False)
