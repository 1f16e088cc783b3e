"""job attempts: the attempt of each stream record, one row per run of a job, checkpoint time

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import smacommon.db

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a constant default: PostgreSQL adds the column without rewriting the table, SQLite
    # with ALTER TABLE; the records written before are all of attempt 1
    with op.batch_alter_table('job_streams', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt', sa.Integer(), server_default=sa.text('1'),
                                      nullable=False))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checkpoint_at', smacommon.db.UTCDateTime(),
                                      nullable=True))
    op.create_table(
        'job_attempts',
        sa.Column('job_id', sa.Uuid(), nullable=False),
        sa.Column('attempt', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('cause', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('worker', sa.String(length=200), nullable=True),
        sa.Column('started_at', smacommon.db.UTCDateTime(), nullable=True),
        sa.Column('resumed_from_checkpoint_at', smacommon.db.UTCDateTime(), nullable=True),
        sa.Column('after_seq', sa.Integer(), nullable=True),
        sa.Column('ended_at', smacommon.db.UTCDateTime(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=True),
        sa.Column('end_reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', 'attempt'),
    )


def downgrade() -> None:
    op.drop_table('job_attempts')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('checkpoint_at')
    with op.batch_alter_table('job_streams', schema=None) as batch_op:
        batch_op.drop_column('attempt')
