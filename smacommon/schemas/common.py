"""Pieces every resource schema uses."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

# every integer column is an INTEGER (32 bits on PostgreSQL): a bigger number in a query, a
# path or a header would overflow in the database (a 500) instead of matching no row
DB_INT_MAX = 2**31 - 1


class DbInteger(ma.fields.Integer):
    """An integer that a database INTEGER column can hold (a field's own range narrows it)."""

    def __init__(self, *, validate: Any = None, **kwargs: Any) -> None:
        more = [] if validate is None else list(validate) if isinstance(
            validate, list | tuple) else [validate]
        super().__init__(validate=[ma.validate.Range(min=-DB_INT_MAX - 1, max=DB_INT_MAX),
                                   *more], **kwargs)


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
