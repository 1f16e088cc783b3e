"""portal sessions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

import smacommon.db

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('portal_sessions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('ended_at', smacommon.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('id_hash')
    )
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_sessions_expires_at'), ['expires_at'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_portal_sessions_token_hash'), ['token_hash'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_sessions_token_hash'))
        batch_op.drop_index(batch_op.f('ix_portal_sessions_expires_at'))

    op.drop_table('portal_sessions')
