"""Schedule and webhook schemas. A webhook's token is shown once, in its creation answer."""

from __future__ import annotations

import marshmallow as ma

from smacommon.recurrence import FREQUENCIES, OCCURRENCES, WEEK_DAYS
from smacommon.schemas.common import PageArgsSchema, ResponseSchema, StrictSchema
from smacommon.schemas.job import ArgumentsField

_description = ma.fields.String(validate=ma.validate.Length(max=4000))
_group = ma.fields.String(allow_none=True, metadata={
    "description": "Worker group of the jobs (default: the runbook's)."})


def _shown_arguments() -> ma.fields.Function:
    return ma.fields.Function(lambda item: item.arguments or [], dump_only=True, metadata={
        "description": "Fixed positional arguments of every job it starts, in order.",
        "type": "array", "items": {"type": "string"}})


_FREQUENCY = ma.validate.OneOf(FREQUENCIES)
_OCCURRENCE = ma.validate.OneOf(list(OCCURRENCES))
_DAY = ma.validate.OneOf(WEEK_DAYS)
_MISSED = ma.validate.OneOf(["run_once", "skip"])


class OccurrenceInputSchema(StrictSchema):
    occurrence = ma.fields.String(required=True, validate=_OCCURRENCE)
    day = ma.fields.String(required=True, validate=_DAY)


class OccurrenceSchema(ResponseSchema):
    occurrence = ma.fields.String(validate=_OCCURRENCE)
    day = ma.fields.String(validate=_DAY)


class _ScheduleFields(StrictSchema):
    description = _description
    interval = ma.fields.Integer(validate=ma.validate.Range(min=1, max=100_000))
    start_time = ma.fields.AwareDateTime(metadata={
        "description": "First fire time, with an offset (default: now); calendar "
                       "frequencies keep its local time of day in `time_zone`."})
    expiry_time = ma.fields.AwareDateTime(allow_none=True)
    time_zone = ma.fields.String(validate=ma.validate.Length(min=1, max=64),
                                 metadata={"description": "IANA time zone, e.g. Europe/Paris."})
    week_days = ma.fields.List(ma.fields.String(validate=_DAY), validate=ma.validate.Length(max=7))
    month_days = ma.fields.List(ma.fields.Integer(), validate=ma.validate.Length(max=32),
                                metadata={"description": "1 to 31; -1 is the last day."})
    monthly_occurrences = ma.fields.List(ma.fields.Nested(OccurrenceInputSchema),
                                         validate=ma.validate.Length(max=35))
    cron = ma.fields.String(validate=ma.validate.Length(max=200), metadata={
        "description": "minute hour day-of-month month day-of-week, in `time_zone`."})
    enabled = ma.fields.Boolean()
    missed = ma.fields.String(validate=_MISSED, metadata={
        "description": "After beat was down across fire times: run once for the missed "
                       "window (run_once, the default) or not at all (skip)."})


class ScheduleCreateSchema(_ScheduleFields):
    name = ma.fields.String(required=True)
    frequency = ma.fields.String(required=True, validate=_FREQUENCY)


class ScheduleUpdateSchema(_ScheduleFields):
    frequency = ma.fields.String(validate=_FREQUENCY)


class ScheduleSchema(ResponseSchema):
    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String(dump_only=True)
    description = ma.fields.String(dump_only=True)
    frequency = ma.fields.String(dump_only=True, validate=_FREQUENCY)
    interval = ma.fields.Integer(dump_only=True)
    start_time = ma.fields.DateTime(dump_only=True)
    expiry_time = ma.fields.DateTime(dump_only=True, allow_none=True)
    time_zone = ma.fields.String(dump_only=True)
    week_days = ma.fields.List(ma.fields.String(validate=_DAY), dump_only=True)
    month_days = ma.fields.List(ma.fields.Integer(), dump_only=True)
    monthly_occurrences = ma.fields.List(ma.fields.Nested(OccurrenceSchema), dump_only=True)
    cron = ma.fields.String(dump_only=True)
    enabled = ma.fields.Boolean(dump_only=True)
    missed = ma.fields.String(dump_only=True, validate=_MISSED)
    next_run = ma.fields.DateTime(dump_only=True, allow_none=True)
    last_run = ma.fields.DateTime(dump_only=True, allow_none=True)
    created_at = ma.fields.DateTime(dump_only=True)
    modified_at = ma.fields.DateTime(dump_only=True)


class ScheduleQueryArgsSchema(PageArgsSchema):
    pass


SchedulePageSchema = type("SchedulePageSchema", (ResponseSchema,), {
    "items": ma.fields.List(ma.fields.Nested(ScheduleSchema)),
    "next_cursor": ma.fields.String(allow_none=True)})


class LinkCreateSchema(StrictSchema):
    runbook = ma.fields.String(required=True, metadata={"description": "Runbook name or id."})
    parameters = ma.fields.Dict(load_default=dict)
    arguments = ArgumentsField()
    worker_group = _group


class LinkSchema(ResponseSchema):
    id = ma.fields.UUID(dump_only=True)
    schedule = ma.fields.Function(lambda link: link.schedule.name, dump_only=True)
    schedule_id = ma.fields.UUID(dump_only=True)
    runbook = ma.fields.Function(lambda link: link.runbook.name, dump_only=True)
    runbook_id = ma.fields.UUID(dump_only=True)
    parameters = ma.fields.Dict(dump_only=True)
    arguments = _shown_arguments()
    worker_group = ma.fields.String(dump_only=True, allow_none=True)
    next_run = ma.fields.Method("_next_run", dump_only=True, allow_none=True)
    created_at = ma.fields.DateTime(dump_only=True)

    def _next_run(self, link):
        moment = link.schedule.next_run
        return moment.isoformat() if moment else None


class LinkListSchema(ResponseSchema):
    items = ma.fields.List(ma.fields.Nested(LinkSchema))


# --- webhooks ---
class WebhookCreateSchema(StrictSchema):
    name = ma.fields.String(required=True)
    runbook = ma.fields.String(required=True, metadata={"description": "Runbook name or id."})
    description = _description
    parameters = ma.fields.Dict(load_default=dict, metadata={
        "description": "Fixed parameters of every job it starts (checked like a start)."})
    arguments = ArgumentsField()
    worker_group = _group
    enabled = ma.fields.Boolean(load_default=True)
    expiry_time = ma.fields.AwareDateTime(metadata={"description": "Default: a year from now."})


class WebhookUpdateSchema(StrictSchema):
    description = _description
    parameters = ma.fields.Dict()
    arguments = ma.fields.Raw(metadata={"description": "Replace the fixed positional "
                                                       "arguments ([] for none)."})
    worker_group = _group
    enabled = ma.fields.Boolean()
    expiry_time = ma.fields.AwareDateTime()


class WebhookSchema(ResponseSchema):
    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String(dump_only=True)
    description = ma.fields.String(dump_only=True)
    runbook = ma.fields.Function(lambda hook: hook.runbook.name, dump_only=True)
    parameters = ma.fields.Dict(dump_only=True)
    arguments = _shown_arguments()
    worker_group = ma.fields.String(dump_only=True, allow_none=True)
    enabled = ma.fields.Boolean(dump_only=True)
    expiry_time = ma.fields.DateTime(dump_only=True)
    last_invoked_at = ma.fields.DateTime(dump_only=True, allow_none=True)
    created_at = ma.fields.DateTime(dump_only=True)
    modified_at = ma.fields.DateTime(dump_only=True)


class WebhookCreatedSchema(WebhookSchema):
    uri = ma.fields.String(dump_only=True, metadata={
        "description": "The invoke URL with its secret token: shown only in this answer."})


WebhookPageSchema = type("WebhookPageSchema", (ResponseSchema,), {
    "items": ma.fields.List(ma.fields.Nested(WebhookSchema)),
    "next_cursor": ma.fields.String(allow_none=True)})


class WebhookInvokedSchema(ResponseSchema):
    JobIds = ma.fields.List(ma.fields.String())
