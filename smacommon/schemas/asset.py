"""Asset schemas. Secret fields are load-only: no response ever carries them."""

from __future__ import annotations

import marshmallow as ma

from smacommon.schemas.common import PageArgsSchema, ResponseSchema, StrictSchema

_description = ma.fields.String(validate=ma.validate.Length(max=4000))
_TAG_HELP = {"description": "Only jobs of runbooks with this tag may read it (others get 404, "
                            "as for an asset that does not exist); null: any job."}


def _runbook_tag(**kw) -> ma.fields.String:
    return ma.fields.String(allow_none=True, validate=ma.validate.Length(min=1, max=64),
                            metadata=_TAG_HELP, **kw)


class AssetQueryArgsSchema(PageArgsSchema):
    pass


class _AssetSchema(ResponseSchema):
    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String(dump_only=True)
    description = ma.fields.String(dump_only=True)
    created_at = ma.fields.DateTime(dump_only=True)
    modified_at = ma.fields.DateTime(dump_only=True)


def _page(item_schema: type) -> type:
    return type(f"{item_schema.__name__[:-6]}PageSchema", (ResponseSchema,), {
        "items": ma.fields.List(ma.fields.Nested(item_schema)),
        "next_cursor": ma.fields.String(allow_none=True)})


class _LimitedSchema(_AssetSchema):
    runbook_tag = ma.fields.String(dump_only=True, allow_none=True, metadata=_TAG_HELP)


# --- variables ---
class VariableSchema(_LimitedSchema):
    is_encrypted = ma.fields.Boolean(dump_only=True)
    value = ma.fields.Method("_value", dump_only=True, metadata={
        "description": "The value; absent for an encrypted variable."})

    def _value(self, var):
        return ma.missing if var.is_encrypted else var.value


class VariableCreateSchema(StrictSchema):
    name = ma.fields.String(required=True)
    value = ma.fields.Raw(load_default=None, allow_none=True)
    is_encrypted = ma.fields.Boolean(load_default=False)
    description = _description
    runbook_tag = _runbook_tag(load_default=None)


class VariableUpdateSchema(StrictSchema):
    value = ma.fields.Raw(allow_none=True)
    is_encrypted = ma.fields.Boolean()
    description = _description
    runbook_tag = _runbook_tag()


VariablePageSchema = _page(VariableSchema)


# --- credentials ---
class CredentialSchema(_LimitedSchema):
    username = ma.fields.String(dump_only=True)


class CredentialCreateSchema(StrictSchema):
    name = ma.fields.String(required=True)
    username = ma.fields.String(required=True, validate=ma.validate.Length(max=256))
    password = ma.fields.String(required=True, load_only=True,
                                validate=ma.validate.Length(max=65536))
    description = _description
    runbook_tag = _runbook_tag(load_default=None)


class CredentialUpdateSchema(StrictSchema):
    username = ma.fields.String(validate=ma.validate.Length(max=256))
    password = ma.fields.String(load_only=True, validate=ma.validate.Length(max=65536))
    description = _description
    runbook_tag = _runbook_tag()


CredentialPageSchema = _page(CredentialSchema)


# --- connection types and connections ---
class ConnectionFieldInputSchema(StrictSchema):
    name = ma.fields.String(required=True, validate=ma.validate.Regexp(
        r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", error="Use letters, digits and _."))
    is_encrypted = ma.fields.Boolean(load_default=False)
    is_optional = ma.fields.Boolean(load_default=False)


class ConnectionFieldSchema(ResponseSchema):
    name = ma.fields.String()
    is_encrypted = ma.fields.Boolean()
    is_optional = ma.fields.Boolean()


class ConnectionTypeSchema(_AssetSchema):
    fields = ma.fields.List(ma.fields.Nested(ConnectionFieldSchema), dump_only=True)


class ConnectionTypeCreateSchema(StrictSchema):
    name = ma.fields.String(required=True)
    fields = ma.fields.List(ma.fields.Nested(ConnectionFieldInputSchema), required=True,
                            validate=ma.validate.Length(min=1, max=100))
    description = _description


ConnectionTypePageSchema = _page(ConnectionTypeSchema)


class ConnectionSchema(_LimitedSchema):
    connection_type = ma.fields.Function(lambda c: c.connection_type.name, dump_only=True)
    values = ma.fields.Dict(dump_only=True, metadata={"description": "Plain fields only."})
    encrypted_fields = ma.fields.Function(
        lambda c: [f["name"] for f in c.connection_type.fields if f["is_encrypted"]],
        dump_only=True)


class ConnectionCreateSchema(StrictSchema):
    name = ma.fields.String(required=True)
    connection_type = ma.fields.String(required=True)
    values = ma.fields.Dict(keys=ma.fields.String(), load_default=dict, load_only=True)
    description = _description
    runbook_tag = _runbook_tag(load_default=None)


class ConnectionUpdateSchema(StrictSchema):
    values = ma.fields.Dict(keys=ma.fields.String(), load_only=True)
    description = _description
    runbook_tag = _runbook_tag()


ConnectionPageSchema = _page(ConnectionSchema)


# --- certificates ---
class CertificateSchema(_LimitedSchema):
    thumbprint = ma.fields.String(dump_only=True)
    subject = ma.fields.String(dump_only=True)
    not_after = ma.fields.DateTime(dump_only=True)
    exportable = ma.fields.Boolean(dump_only=True)
    has_private_key = ma.fields.Boolean(dump_only=True)


class CertificateCreateSchema(StrictSchema):
    name = ma.fields.String(required=True)
    data = ma.fields.String(required=True, load_only=True, metadata={
        "description": "The PFX (PKCS#12) or PEM file, base64-encoded."})
    password = ma.fields.String(load_default=None, allow_none=True, load_only=True)
    exportable = ma.fields.Boolean(load_default=False, metadata={
        "description": "Azure's isExportable, recorded. Running jobs get the private key "
                       "either way (as Azure's runbooks do); no API hands it out."})
    description = _description
    runbook_tag = _runbook_tag(load_default=None)


CertificatePageSchema = _page(CertificateSchema)


# --- what a running job gets ---
class RuntimeVariableSchema(ResponseSchema):
    name = ma.fields.String()
    is_encrypted = ma.fields.Boolean()
    value = ma.fields.Raw(allow_none=True)


class RuntimeVariableSetSchema(StrictSchema):
    value = ma.fields.Raw(required=True, allow_none=True)


class RuntimeCredentialSchema(ResponseSchema):
    name = ma.fields.String()
    username = ma.fields.String()
    password = ma.fields.String()


class RuntimeConnectionSchema(ResponseSchema):
    name = ma.fields.String()
    connection_type = ma.fields.String()
    values = ma.fields.Dict()
    encrypted_fields = ma.fields.List(ma.fields.String())


class RuntimeCertificateSchema(ResponseSchema):
    name = ma.fields.String()
    thumbprint = ma.fields.String()
    data = ma.fields.String(metadata={"description": "base64"})
