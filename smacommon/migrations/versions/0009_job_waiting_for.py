"""jobs.waiting_for: what a waiting job waits for, as a code

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('waiting_for', sa.String(length=16), nullable=True))
    # the reasons earlier versions wrote for a job waiting for a worker of its group
    op.execute("UPDATE jobs SET waiting_for = 'worker' WHERE status IN ('New', 'Resuming') "
               "AND status_reason LIKE 'No worker of group %'")


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('waiting_for')
