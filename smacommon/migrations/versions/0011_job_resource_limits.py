"""job resource limits per runbook, CPU time and peak memory per job

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_LIMITS = ("max_memory_mb", "max_processes", "max_open_files", "max_cpu_seconds",
           "max_file_mb")


def upgrade() -> None:
    with op.batch_alter_table('runbooks', schema=None) as batch_op:
        for name in _LIMITS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cpu_seconds', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('peak_memory_mb', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('peak_memory_mb')
        batch_op.drop_column('cpu_seconds')
    with op.batch_alter_table('runbooks', schema=None) as batch_op:
        for name in reversed(_LIMITS):
            batch_op.drop_column(name)
