"""audit events: door and details

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

import smacommon.models.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        # every event written before this came through the API
        batch_op.add_column(sa.Column('door', sa.String(length=16), server_default='api',
                                      nullable=False))
        batch_op.add_column(sa.Column('details', smacommon.models.types.JSONType,
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('details')
        batch_op.drop_column('door')
