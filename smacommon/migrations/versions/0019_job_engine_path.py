"""jobs.engine_path: which path ran the job's last run: 'warm' (a pre-started Python host
waiting in its sandbox, smaworker.warm) or 'cold' (a process started for the job)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 06:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('engine_path', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('engine_path')
