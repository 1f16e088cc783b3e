"""Uploaded module schemas."""

from __future__ import annotations

import marshmallow as ma

from smacommon.modulefiles.types import MODULE_TYPES
from smacommon.schemas.common import PageArgsSchema, ResponseSchema

TYPE_ERROR = "Unknown module type {input!r}; use one of {choices}."


class ModuleSchema(ResponseSchema):
    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String(dump_only=True, metadata={
        "description": "As the package's metadata, the manifest or the file name gives it."})
    normalized_name = ma.fields.String(dump_only=True, metadata={
        "description": "PEP 503's form of the name, which sma compares (a runbook's "
                       "requirement may spell the name either way)."})
    version = ma.fields.String(dump_only=True)
    module_type = ma.fields.String(dump_only=True, validate=ma.validate.OneOf(MODULE_TYPES))
    filename = ma.fields.String(dump_only=True)
    size = ma.fields.Integer(dump_only=True, metadata={"description": "In bytes."})
    sha256 = ma.fields.String(dump_only=True)
    uploaded_by = ma.fields.String(dump_only=True)
    uploaded_at = ma.fields.DateTime(dump_only=True)


class ModulePageSchema(ResponseSchema):
    items = ma.fields.List(ma.fields.Nested(ModuleSchema))
    next_cursor = ma.fields.String(allow_none=True)


class ModuleQueryArgsSchema(PageArgsSchema):
    name = ma.fields.String(metadata={"description": "Names containing this text (compared "
                                                     "in PEP 503's form)."})
    type = ma.fields.String(validate=ma.validate.OneOf(MODULE_TYPES, error=TYPE_ERROR))
