"""Pieces every resource schema uses."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from smacommon.parameters import TYPES as PARAMETER_TYPES

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
    """A request body: unknown fields are an error, so a misspelt field is not silently
    ignored (the OpenAPI document says `additionalProperties: false`)."""

    class Meta:
        unknown = ma.RAISE


class ResponseSchema(ma.Schema):
    """What the API answers. Only ever dumped: EXCLUDE keeps `additionalProperties: false`
    out of the document, so a client stays good when a later version adds a field, and a
    OneOf validator (which a dump never runs) puts its choices in the document as an enum."""

    class Meta:
        unknown = ma.EXCLUDE


class ValuesArg(ma.fields.List):
    """A query filter taking several values: the key repeated (`status=Failed&status=Stopped`,
    what generated clients send), comma-separated (`status=Failed,Stopped`), or both.
    Documented as an exploded form array."""

    def __init__(self, inner: ma.fields.Field, **kwargs: Any) -> None:
        kwargs["metadata"] = {"description": "One or more values: repeat the key, or separate "
                              "the values with commas.", **kwargs.get("metadata", {})}
        super().__init__(inner, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list:
        values = value if isinstance(value, list | tuple) else [value]
        if not all(isinstance(v, str) for v in values):
            raise self.make_error("invalid")
        parts = [part.strip() for v in values for part in v.split(",")]
        return super()._deserialize([p for p in parts if p], attr, data, **kwargs)


class PageArgsSchema(StrictSchema):
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=1000))
    cursor = ma.fields.String(load_default=None)


_SECRET = "Sealed at rest, shown as ***, masked in the job's output."


class ParameterDeclarationSchema(ResponseSchema):
    """A parameter a job of the runbook takes (later versions may add fields)."""

    name = ma.fields.String(required=True)
    type = ma.fields.String(required=True, validate=ma.validate.OneOf(PARAMETER_TYPES))
    mandatory = ma.fields.Boolean(required=True)
    default = ma.fields.Raw(allow_none=True, metadata={
        "description": "Present only when the parameter has a default."})
    secret = ma.fields.Boolean(metadata={"description": f"{_SECRET} Present only when true."})
    minimum = ma.fields.Integer(metadata={"description": "The least value an int takes (e.g. "
                                                         "-2147483648 for PowerShell's [int])."})
    maximum = ma.fields.Integer(metadata={"description": "The greatest value an int takes (e.g. "
                                                         "255 for PowerShell's [byte])."})


class ParameterDeclarationInputSchema(StrictSchema):
    """A parameter declared explicitly (services.runbooks checks names, types and defaults)."""

    name = ma.fields.String(required=True)
    type = ma.fields.String(validate=ma.validate.OneOf(
        PARAMETER_TYPES, error="Unknown type {input!r}; use one of {choices}."),
        metadata={"description": "Default: any."})
    mandatory = ma.fields.Boolean()
    default = ma.fields.Raw(allow_none=True)
    secret = ma.fields.Boolean(metadata={"description": _SECRET})
    minimum = ma.fields.Integer(metadata={"description": "The least value an int takes (e.g. "
                                                         "-2147483648 for PowerShell's [int])."})
    maximum = ma.fields.Integer(metadata={"description": "The greatest value an int takes (e.g. "
                                                         "255 for PowerShell's [byte])."})


class ErrorSchema(ResponseSchema):
    """Every error the API answers (smaweb.errors)."""

    code = ma.fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    status = ma.fields.String(required=True, metadata={"description": "Its name."})
    message = ma.fields.String(required=True, metadata={"description": "What to fix."})
    errors = ma.fields.Dict(metadata={"description": "Messages by field, when input was "
                                                     "refused."})


class RequirementsSchema(ResponseSchema):
    """The pinned set of a Python runbook's inline requirements (PEP 723), resolved at
    publish (smacommon.requirements)."""

    dependencies = ma.fields.List(ma.fields.String(), required=True, metadata={
        "description": "The requirements as the script's `# /// script` block declares them."})
    requires_python = ma.fields.String(required=True, allow_none=True, metadata={
        "description": "Its requires-python, or null."})
    pinned = ma.fields.List(ma.fields.String(), required=True, metadata={
        "description": "The resolved set, name==version, sorted, with every transitive "
                       "dependency."})
    python = ma.fields.String(required=True, metadata={
        "description": "The Python (major.minor) it was resolved for."})
    key = ma.fields.String(required=True, metadata={
        "description": "The environment it runs in: a hash of the pinned set and Python."})


def RequirementsField() -> ma.fields.Nested:  # noqa: N802 (a field, named like one)
    """`requirements` of a version or a job: null when the runbook declares none."""
    return ma.fields.Nested(RequirementsSchema, dump_only=True, allow_none=True, metadata={
        "description": "The pinned requirements (PEP 723) its jobs run with; null: none, "
                       "the worker's own interpreter."})
