"""Job and job stream schemas."""

from __future__ import annotations

import datetime as dt

import marshmallow as ma
from webargs.fields import DelimitedList

from smacommon.schemas.common import DbInteger, PageArgsSchema, StrictSchema
from smacommon.states import ALL_STATUSES
from smacommon.streams import STREAMS


def AttemptArg() -> DbInteger:  # noqa: N802 (a field, named like one)
    """The `attempt` filter: only what that attempt (run) of the job wrote."""
    return DbInteger(validate=ma.validate.Range(min=1, error="Attempts are numbered from 1."),
                     metadata={"description": "Only the records of this attempt (1, 2, ...: "
                                              "each run of the job is one)."})


class JobStartSchema(StrictSchema):
    parameters = ma.fields.Raw(load_default=None,
                               metadata={"description": "Parameter values by name."})
    worker_group = ma.fields.String(load_default=None)
    wait = ma.fields.Float(load_default=None, validate=ma.validate.Range(min=0, max=300),
                           metadata={"description": "Seconds to wait for the job to finish "
                                     "before answering (at most 300)."})


class BatchItemSchema(StrictSchema):
    runbook = ma.fields.String(required=True, metadata={"description": "Runbook id or name."})
    parameters = ma.fields.Raw(load_default=None)
    worker_group = ma.fields.String(load_default=None)


class JobBatchSchema(StrictSchema):
    jobs = ma.fields.List(ma.fields.Nested(BatchItemSchema), required=True,
                          validate=ma.validate.Length(min=1, max=1000))


class JobSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    runbook_id = ma.fields.UUID(dump_only=True)
    runbook_name = ma.fields.String(dump_only=True)
    runbook_version = ma.fields.Integer(dump_only=True, allow_none=True)
    is_test = ma.fields.Boolean(dump_only=True)
    status = ma.fields.String(dump_only=True)
    status_reason = ma.fields.String(dump_only=True, allow_none=True)
    exception = ma.fields.String(dump_only=True, allow_none=True)
    parameters = ma.fields.Raw(dump_only=True)
    worker_group = ma.fields.String(dump_only=True)
    worker = ma.fields.String(dump_only=True, allow_none=True)
    started_by = ma.fields.String(dump_only=True)
    parent_job_id = ma.fields.UUID(dump_only=True, allow_none=True)
    attempt = ma.fields.Integer(dump_only=True)
    exit_code = ma.fields.Integer(dump_only=True, allow_none=True)
    cpu_seconds = ma.fields.Float(
        dump_only=True, allow_none=True,
        metadata={"description": "CPU time its last run used (null: not measured)."})
    peak_memory_mb = ma.fields.Integer(
        dump_only=True, allow_none=True,
        metadata={"description": "Peak memory of its last run: of the whole job with a "
                  "cgroup per job, else of its largest process (null: not measured)."})
    created_at = ma.fields.DateTime(dump_only=True)
    start_time = ma.fields.DateTime(dump_only=True, allow_none=True)
    end_time = ma.fields.DateTime(dump_only=True, allow_none=True)
    modified_at = ma.fields.DateTime(dump_only=True)


class JobStatusEventSchema(ma.Schema):
    status = ma.fields.String(dump_only=True)
    time = ma.fields.DateTime(dump_only=True)
    actor = ma.fields.String(dump_only=True)
    reason = ma.fields.String(dump_only=True, allow_none=True)
    reason_code = ma.fields.String(
        dump_only=True, allow_none=True,
        metadata={"description": "Why, as a code: worker_shutdown, worker_lost (null: none)."})


class JobAttemptSchema(ma.Schema):
    number = ma.fields.Integer(attribute="attempt", dump_only=True)
    cause = ma.fields.String(dump_only=True, metadata={
        "description": "Why it started: first, user (resumed by a user), worker_lost "
                       "(resumed after its worker was lost), worker_shutdown (resumed after "
                       "its worker shut down)."})
    reason = ma.fields.String(dump_only=True, allow_none=True)
    worker = ma.fields.String(dump_only=True, allow_none=True,
                              metadata={"description": "Null until a worker claims it."})
    started_at = ma.fields.DateTime(dump_only=True, allow_none=True)
    ended_at = ma.fields.DateTime(dump_only=True, allow_none=True)
    status = ma.fields.String(dump_only=True, allow_none=True, metadata={
        "description": "The job's status when the attempt ended (Resuming: its worker was "
                       "lost and the next attempt resumes it); null while it runs."})
    end_reason = ma.fields.String(dump_only=True, allow_none=True)
    resumed_from_checkpoint_at = ma.fields.DateTime(dump_only=True, allow_none=True, metadata={
        "description": "When the checkpoint it continued from was written (null: from the "
                       "start)."})
    after_seq = ma.fields.Integer(dump_only=True, allow_none=True, metadata={
        "description": "Its records are numbered after this seq."})
    summary = ma.fields.String(dump_only=True, metadata={
        "description": "One line for people, the marker between attempts in the output."})


class JobDetailSchema(JobSchema):
    status_history = ma.fields.List(ma.fields.Nested(JobStatusEventSchema), dump_only=True)
    attempts = ma.fields.List(ma.fields.Nested(JobAttemptSchema), dump_only=True, metadata={
        "description": "Each run of the job, first first."})
    has_checkpoint = ma.fields.Function(
        lambda j: j.sealed_checkpoint is not None or j.checkpoint is not None, dump_only=True)
    checkpoint_at = ma.fields.DateTime(dump_only=True, allow_none=True, metadata={
        "description": "When the runbook wrote the checkpoint kept (a resume goes on from it)."})


class JobBatchResultSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(JobSchema))


class JobPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(JobSchema))
    next_cursor = ma.fields.String(allow_none=True)


class JobQueryArgsSchema(PageArgsSchema):
    runbook = ma.fields.String(metadata={"description": "Runbook id or name."})
    status = DelimitedList(ma.fields.String(validate=ma.validate.OneOf(ALL_STATUSES)),
                                     metadata={"description": "Comma-separated statuses."})
    started_by = ma.fields.String()
    is_test = ma.fields.Boolean()
    since = ma.fields.AwareDateTime(default_timezone=dt.UTC,
                                    metadata={"description": "Created at or after (ISO 8601)."})
    until = ma.fields.AwareDateTime(default_timezone=dt.UTC,
                                    metadata={"description": "Created before (ISO 8601)."})


class JobStreamSchema(ma.Schema):
    seq = ma.fields.Integer(dump_only=True)
    attempt = ma.fields.Integer(dump_only=True,
                                metadata={"description": "The attempt (run) that wrote it."})
    stream = ma.fields.String(dump_only=True)
    time = ma.fields.DateTime(dump_only=True)
    text = ma.fields.String(dump_only=True)
    value = ma.fields.Raw(dump_only=True, allow_none=True)


class JobStreamPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(JobStreamSchema))
    next_after_seq = ma.fields.Integer(allow_none=True, metadata={
        "description": "Pass as after_seq for the next page; null when this was the last."})


class JobStreamQueryArgsSchema(StrictSchema):
    stream = DelimitedList(ma.fields.String(validate=ma.validate.OneOf(STREAMS)))
    after_seq = DbInteger(load_default=0, validate=ma.validate.Range(min=0))
    limit = ma.fields.Integer(load_default=1000, validate=ma.validate.Range(min=1, max=10000))
    attempt = AttemptArg()


class JobOutputQueryArgsSchema(StrictSchema):
    attempt = AttemptArg()


class JobEventsQueryArgsSchema(StrictSchema):
    after_seq = DbInteger(validate=ma.validate.Range(min=0), metadata={
        "description": "Send records after this seq (the Last-Event-ID header does the same)."})
    timeout = ma.fields.Float(load_default=300.0, validate=ma.validate.Range(min=0, max=3600),
                              metadata={"description": "End the stream after this many "
                                        "seconds; the client reconnects with Last-Event-ID."})
    attempt = AttemptArg()


class JobEventsHeadersSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # every other header

    last_event_id = DbInteger(data_key="Last-Event-ID", validate=ma.validate.Range(min=0),
                              metadata={"description": "The seq of the last record received "
                                        "(a reconnecting EventSource sends it)."})


class RuntimeJobStartSchema(StrictSchema):
    runbook = ma.fields.String(required=True, metadata={"description": "Runbook name or id."})
    parameters = ma.fields.Dict(load_default=dict)
    wait = ma.fields.Boolean(load_default=False, metadata={
        "description": "The parent waits for this child: stopping the parent stops it."})
    worker_group = ma.fields.String(allow_none=True)


class RuntimeOutputItemSchema(ma.Schema):
    seq = ma.fields.Integer()
    text = ma.fields.String()
    value = ma.fields.Raw(allow_none=True)


class RuntimeOutputSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(RuntimeOutputItemSchema))
    truncated = ma.fields.Boolean()


class RuntimeJobKeysSchema(ma.Schema):
    keys = ma.fields.List(ma.fields.String(), metadata={
        "description": "The job's own Fernet keys (the first encrypts): they open its sealed "
                       "secret parameters and checkpoint, and nothing else."})
