"""requirements: the pinned set of a runbook version's inline requirements (PEP 723), and of
each job (a draft test resolves its own); null when the runbook declares none

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 03:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

import smacommon.models.types

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

_TABLES = ('runbook_versions', 'jobs')


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('requirements', smacommon.models.types.JSONType,
                                       nullable=True))


def downgrade() -> None:
    for table in reversed(_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('requirements')
