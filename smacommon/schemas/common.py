"""Pieces every resource schema uses."""

from __future__ import annotations

import marshmallow as ma


class StrictSchema(ma.Schema):
    """Unknown fields are an error, so a misspelt field is not silently ignored."""

    class Meta:
        unknown = ma.RAISE


class PageArgsSchema(StrictSchema):
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=1000))
    cursor = ma.fields.String(load_default=None)


class ParameterDeclarationSchema(ma.Schema):
    name = ma.fields.String(required=True)
    type = ma.fields.String()
    mandatory = ma.fields.Boolean()
    default = ma.fields.Raw(allow_none=True)
    secret = ma.fields.Boolean(metadata={"description": "Sealed at rest, shown as ***, masked "
                                                        "in the job's output."})
