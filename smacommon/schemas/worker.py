"""Runbook worker schemas."""

from __future__ import annotations

import marshmallow as ma

from smacommon.schemas.common import PageArgsSchema, ResponseSchema, StrictSchema

_STATE = ma.validate.OneOf(["online", "lost"])


class WorkerSchema(ResponseSchema):
    name = ma.fields.String(dump_only=True)
    worker_group = ma.fields.String(dump_only=True)
    engines = ma.fields.List(ma.fields.String(), dump_only=True)
    concurrency = ma.fields.Integer(dump_only=True)
    version = ma.fields.String(dump_only=True)
    started_at = ma.fields.DateTime(dump_only=True)
    heartbeat_at = ma.fields.DateTime(dump_only=True)
    state = ma.fields.String(dump_only=True, validate=_STATE, metadata={
        "description": "online, or lost when its heartbeat is older than three intervals"})
    running_jobs = ma.fields.List(ma.fields.UUID(), dump_only=True)


class WorkerListSchema(ResponseSchema):
    items = ma.fields.List(ma.fields.Nested(WorkerSchema))
    next_cursor = ma.fields.String(allow_none=True)


class WorkerQueryArgsSchema(PageArgsSchema):
    group = ma.fields.String()
    state = ma.fields.String(validate=_STATE)


class PurgeSchema(StrictSchema):
    older_than_days = ma.fields.Integer(load_default=None,
                                        validate=ma.validate.Range(min=0, max=36500))


class PurgeResultSchema(ResponseSchema):
    jobs_deleted = ma.fields.Integer()
    records_deleted = ma.fields.Integer()
    cutoff = ma.fields.DateTime()


class ConfigurationSchema(ResponseSchema):
    job_retention_days = ma.fields.Integer(metadata={
        "description": "Finished jobs older than this are purged (hourly, by beat)."})
    max_job_records = ma.fields.Integer(allow_none=True, metadata={
        "description": "Records a job may write before it is stopped as Failed (null: no "
                       "limit but SMA_JOB_OUTPUT_LIMIT's bytes)."})


class ConfigurationUpdateSchema(StrictSchema):
    job_retention_days = ma.fields.Integer(validate=ma.validate.Range(min=1, max=36500))
    max_job_records = ma.fields.Integer(allow_none=True,
                                        validate=ma.validate.Range(min=1, max=10**9))
