"""role bindings (a role over everything, a tag's runbooks or one runbook), assets limited
to the runbooks with a tag, directory people's groups in their sessions, personal tokens

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02 00:20:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import smacommon.db

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
_LIMITED = ('variables', 'credentials', 'connections', 'certificates')


def upgrade() -> None:
    op.create_table('role_bindings',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('principal', sa.Text(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('scope_type', sa.String(length=16), nullable=False),
    sa.Column('scope_value', sa.String(length=128), nullable=False),
    sa.Column('created_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('role_bindings', schema=None) as batch_op:
        batch_op.create_index('ix_role_bindings_principal', ['principal'], unique=False)
    for table in _LIMITED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('runbook_tag', sa.String(length=64), nullable=True))
    with op.batch_alter_table('directory_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('groups', _JSON, nullable=True))
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('parent_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('owner_dn', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('checked_at', smacommon.db.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_api_tokens_owner'), ['owner'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_owner'))
        for column in ('checked_at', 'owner_dn', 'parent_id', 'owner'):
            batch_op.drop_column(column)
    with op.batch_alter_table('directory_sessions', schema=None) as batch_op:
        batch_op.drop_column('groups')
    for table in _LIMITED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('runbook_tag')
    with op.batch_alter_table('role_bindings', schema=None) as batch_op:
        batch_op.drop_index('ix_role_bindings_principal')
    op.drop_table('role_bindings')
