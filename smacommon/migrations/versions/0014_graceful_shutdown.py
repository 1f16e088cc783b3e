"""job_status_events.reason_code: a move of a job says why as a code beside its text
(worker_shutdown, worker_lost)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job_status_events') as batch:
        batch.add_column(sa.Column('reason_code', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job_status_events') as batch:
        batch.drop_column('reason_code')
