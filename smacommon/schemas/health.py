"""/health and /health/ready answers."""

from __future__ import annotations

import marshmallow as ma

from smacommon.schemas.common import ResponseSchema


class HealthSchema(ResponseSchema):
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(["ok"]))


class CheckSchema(ResponseSchema):
    ok = ma.fields.Boolean(required=True)
    ms = ma.fields.Float(metadata={"description": "How long it took to answer."})
    online = ma.fields.Integer(metadata={"description": "Workers with a recent heartbeat."})
    error = ma.fields.String(metadata={"description": "Why it failed."})


class ChecksSchema(ResponseSchema):
    database = ma.fields.Nested(CheckSchema, required=True)
    workers = ma.fields.Nested(CheckSchema, required=True)
    redis = ma.fields.Nested(CheckSchema, required=True)


class ReadinessSchema(ResponseSchema):
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(["ready", "not ready"]))
    checks = ma.fields.Nested(ChecksSchema, required=True)
