"""sealed fixed parameters of schedule links and webhooks

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('job_schedules', 'webhooks'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('sealed_parameters', sa.Text(), nullable=True))


def downgrade() -> None:
    for table in ('webhooks', 'job_schedules'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('sealed_parameters')
