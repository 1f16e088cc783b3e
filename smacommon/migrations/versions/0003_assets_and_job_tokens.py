"""assets and job tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

import smacommon.db
import smacommon.models.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('certificates',
    sa.Column('thumbprint', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('not_after', smacommon.db.UTCDateTime(), nullable=True),
    sa.Column('exportable', sa.Boolean(), nullable=False),
    sa.Column('has_private_key', sa.Boolean(), nullable=False),
    sa.Column('data_encrypted', sa.Text(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('modified_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('connection_types',
    sa.Column('fields', smacommon.models.types.JSONType, nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('modified_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('credentials',
    sa.Column('username', sa.String(length=256), nullable=False),
    sa.Column('password_encrypted', sa.Text(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('modified_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('variables',
    sa.Column('is_encrypted', sa.Boolean(), nullable=False),
    sa.Column('value', smacommon.models.types.JSONType, nullable=True),
    sa.Column('value_encrypted', sa.Text(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('modified_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('connections',
    sa.Column('connection_type_id', sa.Uuid(), nullable=False),
    sa.Column('values', smacommon.models.types.JSONType, nullable=False),
    sa.Column('values_encrypted', sa.Text(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('modified_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['connection_type_id'], ['connection_types.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_hash', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_token_hash'), ['token_hash'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_token_hash'))
        batch_op.drop_column('token_hash')

    op.drop_table('connections')
    op.drop_table('variables')
    op.drop_table('credentials')
    op.drop_table('connection_types')
    op.drop_table('certificates')
