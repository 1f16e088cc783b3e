"""sealed job parameters and checkpoints

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('sealed_parameters', sa.Text(), nullable=True))
        batch.add_column(sa.Column('sealed_checkpoint', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('sealed_checkpoint')
        batch.drop_column('sealed_parameters')
