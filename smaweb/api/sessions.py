"""/api/v1/sessions: a directory (LDAP) person's name and password for a bearer secret."""

from __future__ import annotations

from smacommon.schemas.auth import NewSessionSchema, SessionCreateSchema
from smaweb import ldapauth
from smaweb.extensions import SmaBlueprint

blp = SmaBlueprint("sessions", __name__, url_prefix="/api/v1/sessions",
                   description="Sign-in of directory (LDAP / Active Directory) people.")


@blp.route("", methods=["POST"])
@blp.operation_id("createSession")
@blp.arguments(SessionCreateSchema)
@blp.response(201, NewSessionSchema)
@blp.doc(security=[])
def create(data):
    """Sign in with a directory user name and password (no bearer token): 201 with a bearer
    secret; 401 wrong name or password (or a locked account), 403 in no mapped group, 404
    when directory sign-in is off, 429 after too many failures, 503 the directory is down."""
    person, secret, row = ldapauth.sign_in(data["username"], data["password"], "api")
    return {"id": row.id, "user": person.name, "principal": person.principal,
            "role": person.role, "expires_at": row.expires_at, "token": secret}
