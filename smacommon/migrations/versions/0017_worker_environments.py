"""workers.environments: the keys of the runbook environments built on each worker's host
(smaworker.environments), so the portal can say where a runbook's environment is ready

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 04:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

import smacommon.models.types

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.add_column(sa.Column('environments', smacommon.models.types.JSONType,
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.drop_column('environments')
