"""Personal tokens: API tokens someone signed in makes for themselves (a directory person, or
the holder of a token), never with more than their own role; listed and revoked by them and
by admins (/api/v1/tokens shows their owner).

A personal token acts as <owner>/token:<name>, so no role binding made for another token
applies to it, and with its own role capped at its owner's: the token that made it must still
be live (its role caps it at each use), and a directory person's groups are read again when
due, as their sessions' are (smaweb/personal.py).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from smacommon.db import utcnow
from smacommon.errors import Conflict, Forbidden, NotFound, ValidationFailed
from smacommon.models import ApiToken
from smacommon.names import LABEL, check_name
from smacommon.roles import GLOBAL_ROLES, RANK, rank
from smacommon.services.audit import record
from smacommon.services.tokens import hash_token, is_live, new_secret, revoke_token

MAX_NAME = 48  # so that <owner>/token:<name> fits the audit's actor (200 characters)
# an OpenID person's role can be read again only from their own sign-in (sma cannot ask the
# provider about them as it asks a directory), so their tokens end within this many days
UNCHECKED_MAX_DAYS = 30


def _mine(owner: str, parent_id: uuid.UUID | None) -> list:
    """Conditions for `owner`'s tokens: a token's owner is that very token (token names need
    not be unique), a person's is their principal."""
    return [ApiToken.owner == owner, ApiToken.parent_id == parent_id
            if parent_id is not None else ApiToken.parent_id.is_(None)]


def lower(role: str, cap: str) -> str:
    """The lesser of two roles."""
    return role if rank(role) <= rank(cap) else cap


def create_personal_token(session: Session, *, owner: str, owner_role: str, name: str,
                          role: str | None = None, expires_in_days: int | None = None,
                          parent_id: uuid.UUID | None = None,
                          owner_dn: str | None = None,
                          max_days: int | None = None) -> tuple[ApiToken, str]:
    """A token `owner` makes for themselves, and its secret (shown once); `max_days`: it
    must expire within that many days (the default then)."""
    check_name(name, LABEL, "token name")
    if len(name) > MAX_NAME:
        raise ValidationFailed(f"A personal token's name has at most {MAX_NAME} characters.",
                               {"name": [f"At most {MAX_NAME} characters."]})
    role = role or owner_role
    if role not in GLOBAL_ROLES:
        raise ValidationFailed(f"Unknown role {role!r}: one of {', '.join(GLOBAL_ROLES)}.",
                               {"role": ["Unknown role."]})
    if RANK[role] > rank(owner_role):
        raise Forbidden(f"A personal token has at most your own role ({owner_role}); you "
                        f"asked for {role}.", {"role": [f"At most {owner_role}."]})
    if max_days is not None:
        expires_in_days = expires_in_days or max_days
        if expires_in_days > max_days:
            raise ValidationFailed(
                f"Your personal tokens last at most {max_days} days: sma reads your role "
                "again only when you sign in, so a token of yours must end by then.",
                {"expires_in_days": [f"At most {max_days}."]})
    if any(is_live(t) for t in session.scalars(select(ApiToken).where(
            *_mine(owner, parent_id), ApiToken.name == name))):
        raise Conflict(f"You already have a token named {name!r}: revoke it, or pick another "
                       "name.")
    secret = new_secret()
    token = ApiToken(name=name, role=role, token_hash=hash_token(secret), owner=owner,
                     parent_id=parent_id, owner_dn=owner_dn, checked_at=utcnow(),
                     expires_at=(utcnow() + timedelta(days=expires_in_days))
                     if expires_in_days else None)
    session.add(token)
    session.flush()
    record(session, "token.create", f"/api/v1/tokens/{token.id}", name=name, role=role,
           personal=True)
    return token, secret


def tokens_of(owner: str, parent_id: uuid.UUID | None) -> Select:
    """The personal tokens of `owner` (made with the token `parent_id`): a statement to page."""
    return select(ApiToken).where(*_mine(owner, parent_id))


def revoke_own(session: Session, owner: str, parent_id: uuid.UUID | None,
               token_id: str) -> ApiToken:
    """Revoke one of `owner`'s personal tokens; another's is not found."""
    try:
        token = session.scalar(select(ApiToken).where(
            ApiToken.id == uuid.UUID(str(token_id)), *_mine(owner, parent_id)))
    except ValueError:
        token = None
    if token is None:
        raise NotFound(f"You have no token {token_id}.")
    return revoke_token(session, token.id)


def parent_cap(session: Session, token: ApiToken) -> str | None:
    """The role a token's personal token may act with now: capped by the live token that
    made it; None when that token is revoked, expired or gone."""
    if token.parent_id is None:
        return token.role
    parent = session.get(ApiToken, token.parent_id)
    if parent is None or not is_live(parent):
        return None
    return lower(token.role, parent.role)


def follow_owner(session: Session, owner: str, role: str | None) -> None:
    """`owner`'s role read again (an OpenID person's, at their session's refresh): the live
    tokens they made as themselves are lowered to it, or revoked when they have none."""
    for token in session.scalars(select(ApiToken).where(*_mine(owner, None))):
        if not is_live(token):
            continue
        if role is None:
            revoke_token(session, token.id)
        else:
            token.role = lower(token.role, role)
