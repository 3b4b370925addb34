"""Who changed what: one ``registry_changes`` row per create or update of a registry record.

The service's audit log records each HTTP call, but the command line left no record and nothing in
the registry said who made a change. Each row names the time (UTC), the actor (the caller's JWT
issuer, "api-token", "anonymous-dev", or the operating-system user of the command line), the surface
(api, web, cli), the action, the patient's row id, the changed row's id and, for an update, the names
of the fields that changed: never their values.

A downgrade drops the table and the history in it (``leukos registry migrate --down`` refuses unless
``--yes-lose-data`` when it holds rows).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registry_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('surface', sa.String(length=8), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('record_id', sa.Integer(), nullable=True),
    sa.Column('fields', sa.Text(), nullable=True),
    sa.CheckConstraint("surface IN ('api', 'web', 'cli')", name='ck_registry_changes_surface'),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('registry_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registry_changes_patient_id'), ['patient_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('registry_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registry_changes_patient_id'))
    op.drop_table('registry_changes')
