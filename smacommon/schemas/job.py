"""Job and job stream schemas."""

from __future__ import annotations

import datetime as dt

import marshmallow as ma

from smacommon.schemas.common import (
    DbInteger,
    PageArgsSchema,
    RequirementsField,
    ResponseSchema,
    StrictSchema,
    ValuesArg,
)
from smacommon.states import ALL_STATUSES
from smacommon.streams import STREAMS

_STATUS = ma.validate.OneOf(ALL_STATUSES)
_STREAM = ma.validate.OneOf(STREAMS)


def ArgumentsField() -> ma.fields.Raw:  # noqa: N802 (a field, named like one)
    """`arguments`: checked by smacommon.arguments, whose 400 says what to send."""
    return ma.fields.Raw(load_default=None, metadata={
        "description": "Positional arguments, a list of strings passed in order (sys.argv[1:] "
                       "of a Python script, $1 $2 ... in Bash); numbers and booleans are "
                       "passed as their JSON text.",
        "type": "array", "items": {"type": "string"}})


def AttemptArg() -> DbInteger:  # noqa: N802 (a field, named like one)
    """The `attempt` filter: only what that attempt (run) of the job wrote."""
    return DbInteger(validate=ma.validate.Range(min=1, error="Attempts are numbered from 1."),
                     metadata={"description": "Only the records of this attempt (1, 2, ...: "
                                              "each run of the job is one)."})


def WaitField() -> ma.fields.Float:  # noqa: N802 (a field, named like one)
    """`wait`: seconds to hold the answer until the job ends (body or query)."""
    return ma.fields.Float(load_default=None, validate=ma.validate.Range(
        min=0, max=300, error="wait is a number of seconds from 0 to 300."), metadata={
        "description": "Seconds to wait for the job to end (Completed, Failed, Stopped or "
                       "Suspended) before answering, at most 300; the answer comes as soon "
                       "as it ends, with its final status. In the body or the query, not "
                       "both with different values."})


class JobStartSchema(StrictSchema):
    parameters = ma.fields.Raw(load_default=None,
                               metadata={"description": "Parameter values by name."})
    arguments = ArgumentsField()
    worker_group = ma.fields.String(load_default=None)
    wait = WaitField()


class JobStartQueryArgsSchema(StrictSchema):
    wait = WaitField()


class BatchItemSchema(StrictSchema):
    runbook = ma.fields.String(required=True, metadata={"description": "Runbook id or name."})
    parameters = ma.fields.Raw(load_default=None)
    arguments = ArgumentsField()
    worker_group = ma.fields.String(load_default=None)


class JobBatchSchema(StrictSchema):
    jobs = ma.fields.List(ma.fields.Nested(BatchItemSchema), required=True,
                          validate=ma.validate.Length(min=1, max=1000))


class JobSchema(ResponseSchema):
    id = ma.fields.UUID(dump_only=True)
    runbook_id = ma.fields.UUID(dump_only=True)
    runbook_name = ma.fields.String(dump_only=True)
    runbook_version = ma.fields.Integer(dump_only=True, allow_none=True)
    is_test = ma.fields.Boolean(dump_only=True)
    status = ma.fields.String(dump_only=True, validate=_STATUS)
    status_reason = ma.fields.String(dump_only=True, allow_none=True)
    exception = ma.fields.String(dump_only=True, allow_none=True)
    parameters = ma.fields.Raw(dump_only=True)
    arguments = ma.fields.Function(lambda job: job.arguments or [], dump_only=True, metadata={
        "description": "Positional arguments, in order.", "type": "array",
        "items": {"type": "string"}})
    requirements = RequirementsField()
    worker_group = ma.fields.String(dump_only=True)
    worker = ma.fields.String(dump_only=True, allow_none=True)
    started_by = ma.fields.String(dump_only=True, metadata={
        "description": "Who started it: user:<name>, schedule:<id>, webhook:<id> or "
                       "job:<id> (a parent job)."})
    started_by_name = ma.fields.String(dump_only=True, metadata={
        "description": "started_by with the schedule's or webhook's name in place of its id "
                       "(the id when it has been deleted)."})
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
    engine_path = ma.fields.String(
        dump_only=True, allow_none=True,
        metadata={"description": "How its last run started: warm (a Python host started "
                  "before the job, waiting in its sandbox) or cold (a process started for "
                  "the job); null until it runs."})
    created_at = ma.fields.DateTime(dump_only=True)
    start_time = ma.fields.DateTime(dump_only=True, allow_none=True)
    end_time = ma.fields.DateTime(dump_only=True, allow_none=True)
    modified_at = ma.fields.DateTime(dump_only=True)


class JobStatusEventSchema(ResponseSchema):
    status = ma.fields.String(dump_only=True, validate=_STATUS)
    time = ma.fields.DateTime(dump_only=True)
    actor = ma.fields.String(dump_only=True)
    reason = ma.fields.String(dump_only=True, allow_none=True)
    reason_code = ma.fields.String(
        dump_only=True, allow_none=True,
        metadata={"description": "Why, as a code: worker_shutdown, worker_lost (null: none)."})


class JobAttemptSchema(ResponseSchema):
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
    status = ma.fields.String(dump_only=True, allow_none=True, validate=_STATUS, metadata={
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


class JobBatchResultSchema(ResponseSchema):
    items = ma.fields.List(ma.fields.Nested(JobSchema))


class JobPageSchema(ResponseSchema):
    items = ma.fields.List(ma.fields.Nested(JobSchema))
    next_cursor = ma.fields.String(allow_none=True)


class JobQueryArgsSchema(PageArgsSchema):
    runbook = ma.fields.String(metadata={"description": "Runbook id or name."})
    status = ValuesArg(ma.fields.String(validate=_STATUS))
    started_by = ma.fields.String()
    is_test = ma.fields.Boolean()
    since = ma.fields.AwareDateTime(default_timezone=dt.UTC,
                                    metadata={"description": "Created at or after (ISO 8601)."})
    until = ma.fields.AwareDateTime(default_timezone=dt.UTC,
                                    metadata={"description": "Created before (ISO 8601)."})


class JobStreamSchema(ResponseSchema):
    seq = ma.fields.Integer(dump_only=True)
    attempt = ma.fields.Integer(dump_only=True,
                                metadata={"description": "The attempt (run) that wrote it."})
    stream = ma.fields.String(dump_only=True, validate=_STREAM)
    time = ma.fields.DateTime(dump_only=True)
    text = ma.fields.String(dump_only=True)
    value = ma.fields.Raw(dump_only=True, allow_none=True)


class JobStreamPageSchema(ResponseSchema):
    items = ma.fields.List(ma.fields.Nested(JobStreamSchema))
    next_after_seq = ma.fields.Integer(allow_none=True, metadata={
        "description": "Pass as after_seq for the next page; null when this was the last."})


class JobStreamQueryArgsSchema(StrictSchema):
    stream = ValuesArg(ma.fields.String(validate=_STREAM))
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
    arguments = ArgumentsField()
    wait = ma.fields.Boolean(load_default=False, metadata={
        "description": "The parent waits for this child: stopping the parent stops it."})
    worker_group = ma.fields.String(allow_none=True)


class RuntimeOutputItemSchema(ResponseSchema):
    seq = ma.fields.Integer()
    text = ma.fields.String()
    value = ma.fields.Raw(allow_none=True)


class RuntimeOutputSchema(ResponseSchema):
    items = ma.fields.List(ma.fields.Nested(RuntimeOutputItemSchema))
    truncated = ma.fields.Boolean()


class RuntimeJobKeysSchema(ResponseSchema):
    keys = ma.fields.List(ma.fields.String(), metadata={
        "description": "The job's own Fernet keys (the first encrypts): they open its sealed "
                       "secret parameters and checkpoint, and nothing else."})
