"""directory sessions: where a person signed in (ldap or oidc) and an OpenID refresh token

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02 01:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('directory_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=8), nullable=False,
                                      server_default='ldap'))
        batch_op.add_column(sa.Column('refresh_token', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('directory_sessions', schema=None) as batch_op:
        batch_op.drop_column('refresh_token')
        batch_op.drop_column('source')
