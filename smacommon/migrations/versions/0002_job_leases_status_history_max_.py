"""job leases, status history, max concurrent jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

import smacommon.db
import smacommon.models.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_status_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('time', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job_status_events', schema=None) as batch_op:
        batch_op.create_index('ix_job_status_events_job', ['job_id', 'id'], unique=False)

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_expires_at', smacommon.db.UTCDateTime(), nullable=True))

    with op.batch_alter_table('runbooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_concurrent_jobs', sa.Integer(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('runbooks', schema=None) as batch_op:
        batch_op.drop_column('max_concurrent_jobs')

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('lease_expires_at')

    with op.batch_alter_table('job_status_events', schema=None) as batch_op:
        batch_op.drop_index('ix_job_status_events_job')

    op.drop_table('job_status_events')
