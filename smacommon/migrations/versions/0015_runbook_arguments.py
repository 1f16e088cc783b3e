"""arguments: the positional arguments of jobs, and the fixed ones of webhooks and schedule
links (a JSON list of strings; null when none)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import smacommon.models.types

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_TABLES = ('jobs', 'webhooks', 'job_schedules')


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('arguments', smacommon.models.types.JSONType,
                                       nullable=True))


def downgrade() -> None:
    for table in reversed(_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('arguments')
