"""runbooks, jobs, streams, workers, tokens

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

import smacommon.db
import smacommon.models.types

JSONType = smacommon.models.types.JSONType

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', smacommon.db.UTCDateTime(), nullable=True),
    sa.Column('expires_at', smacommon.db.UTCDateTime(), nullable=True),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_table('runbooks',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('runbook_type', sa.String(length=16), nullable=False),
    sa.Column('tags', JSONType, nullable=False),
    sa.Column('log_verbose', sa.Boolean(), nullable=False),
    sa.Column('log_progress', sa.Boolean(), nullable=False),
    sa.Column('log_debug', sa.Boolean(), nullable=False),
    sa.Column('timeout_seconds', sa.Integer(), nullable=True),
    sa.Column('worker_group', sa.String(length=64), nullable=False),
    sa.Column('declared_parameters', JSONType, nullable=True),
    sa.Column('draft_content', sa.Text(), nullable=True),
    sa.Column('draft_edited_at', smacommon.db.UTCDateTime(), nullable=True),
    sa.Column('published_version_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('modified_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('workers',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('worker_group', sa.String(length=64), nullable=False),
    sa.Column('engines', JSONType, nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('started_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('heartbeat_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('runbook_versions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('runbook_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('parameters', JSONType, nullable=False),
    sa.Column('published_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('published_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['runbook_id'], ['runbooks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('runbook_id', 'number', name='uq_runbook_version_number')
    )
    with op.batch_alter_table('runbook_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runbook_versions_runbook_id'), ['runbook_id'], unique=False)
    # runbooks <-> runbook_versions reference each other: add this side once both exist
    with op.batch_alter_table('runbooks', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_runbook_published_version', 'runbook_versions',
                                    ['published_version_id'], ['id'])

    op.create_table('jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('runbook_id', sa.Uuid(), nullable=False),
    sa.Column('runbook_version_id', sa.Uuid(), nullable=True),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('test_content', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('exception', sa.Text(), nullable=True),
    sa.Column('parameters', JSONType, nullable=False),
    sa.Column('worker_group', sa.String(length=64), nullable=False),
    sa.Column('worker', sa.String(length=200), nullable=True),
    sa.Column('started_by', sa.String(length=200), nullable=False),
    sa.Column('parent_job_id', sa.Uuid(), nullable=True),
    sa.Column('checkpoint', JSONType, nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('created_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('start_time', smacommon.db.UTCDateTime(), nullable=True),
    sa.Column('end_time', smacommon.db.UTCDateTime(), nullable=True),
    sa.Column('modified_at', smacommon.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['parent_job_id'], ['jobs.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['runbook_id'], ['runbooks.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['runbook_version_id'], ['runbook_versions.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_jobs_runbook_created', ['runbook_id', 'created_at'], unique=False)
        batch_op.create_index('ix_jobs_status_created', ['status', 'created_at'], unique=False)

    op.create_table('job_streams',
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('stream', sa.String(length=16), nullable=False),
    sa.Column('time', smacommon.db.UTCDateTime(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('value', JSONType, nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'seq')
    )


def downgrade() -> None:
    op.drop_table('job_streams')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_created')
        batch_op.drop_index('ix_jobs_runbook_created')
        batch_op.drop_index('ix_jobs_created')

    op.drop_table('jobs')
    with op.batch_alter_table('runbook_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runbook_versions_runbook_id'))

    with op.batch_alter_table('runbooks', schema=None) as batch_op:
        batch_op.drop_constraint('fk_runbook_published_version', type_='foreignkey')
    op.drop_table('runbook_versions')
    op.drop_table('workers')
    op.drop_table('runbooks')
    op.drop_table('api_tokens')
