"""The jobs list's filtered orders seek by cursor: ix_jobs_status_created and
ix_jobs_runbook_created end with id, so `status = :s AND (created_at, id) < (:ts, :id)
ORDER BY created_at DESC, id DESC` starts its index scan at the cursor (smaweb.pagination)
instead of reading every earlier row of the status or runbook

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 07:00:00.000000
"""

from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def _rebuild(columns_status: list[str], columns_runbook: list[str]) -> None:
    op.drop_index('ix_jobs_status_created', table_name='jobs')
    op.create_index('ix_jobs_status_created', 'jobs', columns_status)
    op.drop_index('ix_jobs_runbook_created', table_name='jobs')
    op.create_index('ix_jobs_runbook_created', 'jobs', columns_runbook)


def upgrade() -> None:
    _rebuild(['status', 'created_at', 'id'], ['runbook_id', 'created_at', 'id'])


def downgrade() -> None:
    _rebuild(['status', 'created_at'], ['runbook_id', 'created_at'])
