"""directory sessions: sign-ins of LDAP / Active Directory people (portal and API)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 00:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import smacommon.db

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('directory_sessions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('door', sa.String(length=16), nullable=False),
    sa.Column('user_name', sa.String(length=128), nullable=False),
    sa.Column('user_dn', sa.Text(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('checked_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('ended_at', smacommon.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('id_hash')
    )
    with op.batch_alter_table('directory_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_directory_sessions_expires_at'), ['expires_at'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_directory_sessions_user_name'), ['user_name'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('directory_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_directory_sessions_user_name'))
        batch_op.drop_index(batch_op.f('ix_directory_sessions_expires_at'))

    op.drop_table('directory_sessions')
