"""Token and audit schemas."""

from __future__ import annotations

import datetime as dt

import marshmallow as ma

from smacommon.roles import GLOBAL_ROLES, ROLES
from smacommon.schemas.common import PageArgsSchema, ResponseSchema, StrictSchema
from smacommon.services.audit import AUDITED_DOORS, DOORS


class TokenCreateSchema(StrictSchema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=128))
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(GLOBAL_ROLES), metadata={
        "description": "none: the token reaches only what its role bindings give it."})
    expires_in_days = ma.fields.Integer(load_default=None, allow_none=True,
                                        validate=ma.validate.Range(min=1, max=3650))


class TokenSchema(ResponseSchema):
    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String(dump_only=True)
    role = ma.fields.String(dump_only=True, validate=ma.validate.OneOf(GLOBAL_ROLES))
    created_at = ma.fields.DateTime(dump_only=True)
    last_used_at = ma.fields.DateTime(dump_only=True, allow_none=True)
    expires_at = ma.fields.DateTime(dump_only=True, allow_none=True)
    revoked = ma.fields.Boolean(dump_only=True)
    owner = ma.fields.String(dump_only=True, allow_none=True, metadata={
        "description": "A personal token's owner, who made it for themselves (null: an "
                       "admin's token)."})
    principal = ma.fields.String(dump_only=True, metadata={
        "description": "How role bindings and the audit name it: token:<name>, or "
                       "<owner>/token:<name> for a personal token."})


class NewTokenSchema(TokenSchema):
    token = ma.fields.String(dump_only=True, metadata={
        "description": "The secret: shown this once, stored only as a hash."})


class PersonalTokenCreateSchema(StrictSchema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=48))
    role = ma.fields.String(load_default=None, allow_none=True,
                            validate=ma.validate.OneOf(GLOBAL_ROLES), metadata={
        "description": "At most your own role (the default)."})
    expires_in_days = ma.fields.Integer(load_default=None, allow_none=True,
                                        validate=ma.validate.Range(min=1, max=3650))


class TokenPageSchema(ResponseSchema):
    items = ma.fields.List(ma.fields.Nested(TokenSchema))
    next_cursor = ma.fields.String(allow_none=True)


class SessionCreateSchema(StrictSchema):
    """A directory person's sign-in (the service checks the name's characters itself, so a
    bad one gets a message that says what is wrong)."""

    username = ma.fields.String(required=True, validate=ma.validate.Length(max=1024))
    password = ma.fields.String(required=True, load_only=True,
                                validate=ma.validate.Length(max=4096))


class NewSessionSchema(ResponseSchema):
    id = ma.fields.UUID(dump_only=True)
    user = ma.fields.String(dump_only=True, metadata={
        "description": "The name the directory knows the person by."})
    principal = ma.fields.String(dump_only=True, metadata={
        "description": "How the audit and started_by name them: user:<name> (ldap)."})
    role = ma.fields.String(dump_only=True, validate=ma.validate.OneOf(GLOBAL_ROLES))
    expires_at = ma.fields.DateTime(dump_only=True)
    token = ma.fields.String(dump_only=True, metadata={
        "description": "The bearer secret of this session: shown this once, stored only as a "
                       "hash. The role is read from the directory again at least every 15 "
                       "minutes while it is used."})


class AuditEventSchema(ResponseSchema):
    id = ma.fields.UUID(dump_only=True)
    time = ma.fields.DateTime(dump_only=True)
    actor = ma.fields.String(dump_only=True, metadata={
        "description": "admin, token:<name>, job:<id>, webhook:<id> or cli:<user>."})
    action = ma.fields.String(dump_only=True, metadata={
        "description": "What was done, as <object>.<verb> (runbook.publish, job.start)."})
    target = ma.fields.String(dump_only=True, metadata={
        "description": "What it was done to, as its API path."})
    client_address = ma.fields.String(dump_only=True)
    door = ma.fields.String(dump_only=True, validate=ma.validate.OneOf(DOORS), metadata={
        "description": "How the change came in: api, portal, cli, job or webhook."})
    details = ma.fields.Dict(dump_only=True, allow_none=True, metadata={
        "description": "Names of the fields changed, counts, numbers; never a value."})


class AuditPageSchema(ResponseSchema):
    items = ma.fields.List(ma.fields.Nested(AuditEventSchema))
    next_cursor = ma.fields.String(allow_none=True)


class AuditQueryArgsSchema(PageArgsSchema):
    actor = ma.fields.String()
    door = ma.fields.String(validate=ma.validate.OneOf(AUDITED_DOORS))
    action = ma.fields.String(metadata={"description": "Actions starting with this "
                                                       "(runbook. for every runbook change)."})
    target = ma.fields.String(metadata={"description": "Paths starting with this."})
    since = ma.fields.AwareDateTime(default_timezone=dt.UTC)


class RoleBindingCreateSchema(StrictSchema):
    principal = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=512),
                                 metadata={"description": "token:<name>, user:<name> (ldap) "
                                                          "or group:<group DN>."})
    role = ma.fields.String(required=True, metadata={"description": ", ".join(ROLES)})
    scope_type = ma.fields.String(required=True, metadata={
        "description": "everything, tag (the runbooks with the tag) or runbook (one)."})
    scope_value = ma.fields.String(load_default=None, allow_none=True,
                                   validate=ma.validate.Length(max=128), metadata={
        "description": "The tag, or the runbook's name or id; none for everything."})


class RoleBindingSchema(ResponseSchema):
    id = ma.fields.UUID(dump_only=True)
    principal = ma.fields.String(dump_only=True)
    role = ma.fields.String(dump_only=True, validate=ma.validate.OneOf(ROLES))
    scope_type = ma.fields.String(dump_only=True)
    scope_value = ma.fields.String(dump_only=True, metadata={
        "description": "The tag, or the runbook's id; empty for everything."})
    runbook_name = ma.fields.String(dump_only=True, allow_none=True, metadata={
        "description": "A runbook binding's runbook (null once it is deleted)."})
    created_at = ma.fields.DateTime(dump_only=True)
    created_by = ma.fields.String(dump_only=True)


class RoleBindingPageSchema(ResponseSchema):
    items = ma.fields.List(ma.fields.Nested(RoleBindingSchema))
    next_cursor = ma.fields.String(allow_none=True)


class RoleBindingQueryArgsSchema(PageArgsSchema):
    principal = ma.fields.String(validate=ma.validate.Length(max=512))
