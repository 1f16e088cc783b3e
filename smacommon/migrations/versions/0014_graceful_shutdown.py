"""jobs.counted_attempts and job_status_events.reason_code: a resume after a worker shut
down is not counted toward SMA_MAX_ATTEMPTS, and says why as a code

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-05 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
# 0013 (job attempts) is merged before this one: re-chain to '0013' then
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('counted_attempts', sa.Integer(), nullable=False,
                                   server_default='1'))
    # every earlier resume was the reaper's, after a lost worker: each one counted
    op.execute("UPDATE jobs SET counted_attempts = attempt")
    with op.batch_alter_table('job_status_events') as batch:
        batch.add_column(sa.Column('reason_code', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job_status_events') as batch:
        batch.drop_column('reason_code')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('counted_attempts')
