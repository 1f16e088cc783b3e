"""Who a personal token acts as at each use (smacommon/services/personal_tokens.py): capped by
the token that made it, and, for a directory person's, by their groups read again when due
(as their sessions are); a token whose owner may no longer act is revoked there and then."""

from __future__ import annotations

from flask import current_app, g

from smacommon.db import utcnow
from smacommon.directory import name_of
from smacommon.errors import Forbidden
from smacommon.models import ApiToken
from smacommon.services.audit import Actor, act_as
from smacommon.services.personal_tokens import (
    UNCHECKED_MAX_DAYS,
    create_personal_token,
    lower,
    parent_cap,
)
from smacommon.services.tokens import revoke_token
from smaweb.auth import current_principal
from smaweb.extensions import db
from smaweb.limiter import client_address


def create_mine(name: str, role: str | None = None,
                expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """A personal token for the caller, as /api/v1/me/tokens and the portal's My tokens make
    it: at most their role, a directory person's re-checked with the directory at its uses,
    an OpenID person's ending within UNCHECKED_MAX_DAYS (and at the next refresh of their
    session that finds them in no mapped group: smaweb.oidcauth)."""
    if g.get("personal"):
        raise Forbidden("A personal token cannot make tokens: sign in as yourself, or use "
                        "the token that made it.")
    oidc = g.get("person_source") == "oidc"
    return create_personal_token(
        db.session, owner=current_principal(), owner_role=g.role, name=name, role=role,
        expires_in_days=expires_in_days, parent_id=g.get("token_id"),
        owner_dn=g.get("person_dn"), max_days=UNCHECKED_MAX_DAYS if oidc else None)


def act_as_token(token: ApiToken) -> bool:
    """Set g.principal and g.role for this live token; False when a personal token's owner may
    no longer act (it is revoked) or the token that made it ended."""
    g.principal, g.role, g.token_id, g.personal = (token.principal, token.role, token.id,
                                                    token.owner is not None)
    if token.owner is None:
        return True
    role = parent_cap(db.session, token)
    if role is None:
        return False
    if token.owner_dn is not None:
        role = _person_cap(token, role)
    g.role = role
    return role is not None


def _person_cap(token: ApiToken, role: str) -> str | None:
    from datetime import timedelta

    from smaweb import ldapauth

    settings = current_app.config["SMA_SETTINGS"]
    due = token.checked_at is None or \
        token.checked_at <= utcnow() - timedelta(seconds=settings.ldap_refresh_seconds)
    if not due:
        return role
    person = ldapauth.directory().refresh(name_of(token.owner), token.owner_dn) \
        if ldapauth.enabled() else None
    factory = current_app.extensions["sma_db"].factory
    with factory() as own, own.begin():  # the request's own may be read-only
        row = own.get(ApiToken, token.id)
        if person is None or person.role is None:  # left every mapped group, or gone
            act_as(own, Actor(token.principal, "api", client_address()))
            revoke_token(own, row.id)
            return None
        row.role, row.checked_at = lower(row.role, person.role), utcnow()
    return lower(role, person.role)
