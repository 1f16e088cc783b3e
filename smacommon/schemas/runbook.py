"""Runbook and version schemas."""

from __future__ import annotations

import marshmallow as ma

from smacommon.limits import MAX_TIMEOUT_SECONDS, RUNBOOK_LIMITS
from smacommon.schemas.common import (
    PageArgsSchema,
    ParameterDeclarationInputSchema,
    ParameterDeclarationSchema,
    RequirementsField,
    ResponseSchema,
    StrictSchema,
)
from smacommon.scripts import RUNBOOK_TYPES

_tags = ma.fields.List(ma.fields.String(validate=ma.validate.Length(min=1, max=64)),
                       validate=ma.validate.Length(max=50))
_timeout = ma.fields.Integer(allow_none=True,
                             validate=ma.validate.Range(min=1, max=MAX_TIMEOUT_SECONDS))
_parameters = ma.fields.List(ma.fields.Nested(ParameterDeclarationInputSchema),
                             allow_none=True,
                             metadata={"description": "Explicit parameter declarations; when "
                                       "absent they are read from the content at publish."})


def _limit(name: str) -> ma.fields.Integer:
    limit = RUNBOOK_LIMITS[name]
    return ma.fields.Integer(
        allow_none=True, strict=True, validate=ma.validate.Range(min=limit.low, max=limit.high),
        metadata={"description": f"The {limit.label} of its jobs, in {limit.unit} (null: "
                  f"the worker's {limit.setting}; see the README's Runbooks section)."})


class RunbookSettingsSchema(StrictSchema):
    description = ma.fields.String(validate=ma.validate.Length(max=4000))
    tags = _tags
    log_verbose = ma.fields.Boolean()
    log_progress = ma.fields.Boolean()
    log_debug = ma.fields.Boolean()
    timeout_seconds = _timeout
    worker_group = ma.fields.String(allow_none=True)
    max_concurrent_jobs = ma.fields.Integer(
        allow_none=True, validate=ma.validate.Range(min=1, max=10000),
        metadata={"description": "Jobs of this runbook that may run at once (null: no limit)."})
    parameters = _parameters
    max_memory_mb = _limit("max_memory_mb")
    max_processes = _limit("max_processes")
    max_open_files = _limit("max_open_files")
    max_cpu_seconds = _limit("max_cpu_seconds")
    max_file_mb = _limit("max_file_mb")


class RunbookCreateSchema(RunbookSettingsSchema):
    name = ma.fields.String(required=True)
    runbook_type = ma.fields.String(
        required=True, validate=ma.validate.OneOf(
            RUNBOOK_TYPES, error="Unknown runbook type {input!r}; use one of {choices}."))
    content = ma.fields.String(required=True)


class VersionSummarySchema(ResponseSchema):
    id = ma.fields.UUID(dump_only=True)
    number = ma.fields.Integer(dump_only=True)
    content_sha256 = ma.fields.String(dump_only=True)
    parameters = ma.fields.List(ma.fields.Nested(ParameterDeclarationSchema), dump_only=True)
    requirements = RequirementsField()
    published_at = ma.fields.DateTime(dump_only=True)
    published_by = ma.fields.String(dump_only=True)


class VersionSchema(VersionSummarySchema):
    content = ma.fields.String(dump_only=True)


class RunbookSchema(ResponseSchema):
    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String(dump_only=True)
    runbook_type = ma.fields.String(dump_only=True, validate=ma.validate.OneOf(RUNBOOK_TYPES))
    description = ma.fields.String(dump_only=True)
    tags = ma.fields.List(ma.fields.String(), dump_only=True)
    log_verbose = ma.fields.Boolean(dump_only=True)
    log_progress = ma.fields.Boolean(dump_only=True)
    log_debug = ma.fields.Boolean(dump_only=True)
    timeout_seconds = ma.fields.Integer(dump_only=True, allow_none=True)
    worker_group = ma.fields.String(dump_only=True)
    max_concurrent_jobs = ma.fields.Integer(dump_only=True, allow_none=True)
    max_memory_mb = ma.fields.Integer(dump_only=True, allow_none=True)
    max_processes = ma.fields.Integer(dump_only=True, allow_none=True)
    max_open_files = ma.fields.Integer(dump_only=True, allow_none=True)
    max_cpu_seconds = ma.fields.Integer(dump_only=True, allow_none=True)
    max_file_mb = ma.fields.Integer(dump_only=True, allow_none=True)
    declared_parameters = ma.fields.List(
        ma.fields.Nested(ParameterDeclarationSchema), dump_only=True, allow_none=True,
        metadata={"description": "The explicit declarations (null: read from the content)."})
    has_draft = ma.fields.Function(lambda r: r.draft_content is not None, dump_only=True)
    draft_edited_at = ma.fields.DateTime(dump_only=True, allow_none=True)
    published_version = ma.fields.Nested(VersionSummarySchema, dump_only=True, allow_none=True)
    created_at = ma.fields.DateTime(dump_only=True)
    modified_at = ma.fields.DateTime(dump_only=True)


class RunbookQueryArgsSchema(PageArgsSchema):
    name = ma.fields.String(metadata={"description": "Names containing this text."})
    tag = ma.fields.String()
    type = ma.fields.String(validate=ma.validate.OneOf(RUNBOOK_TYPES))


class DraftSchema(ResponseSchema):
    content = ma.fields.String(dump_only=True)
    edited_at = ma.fields.DateTime(dump_only=True, attribute="draft_edited_at")


class DraftUpdateSchema(StrictSchema):
    content = ma.fields.String(required=True)


class RunbookPageSchema(ResponseSchema):
    items = ma.fields.List(ma.fields.Nested(RunbookSchema))
    next_cursor = ma.fields.String(allow_none=True)


class VersionPageSchema(ResponseSchema):
    items = ma.fields.List(ma.fields.Nested(VersionSummarySchema))
    next_cursor = ma.fields.String(allow_none=True)
