"""Portal sessions: a sign-in lives on the server, so signing out or revoking its token
ends it at once, whatever copies of the cookie exist.

The cookie holds a random session id; only its SHA-256 is stored. Every portal request
looks the session up together with its token (one indexed query): an ended or expired
session, or one whose token is revoked or expired, is dead.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from smacommon.db import utcnow
from smacommon.models import ApiToken, PortalSession
from smacommon.services.tokens import hash_token, is_live

LIFETIME = timedelta(hours=12)
LAST_SEEN_EVERY = timedelta(minutes=1)  # at most one write a minute per session


def open_session(session: Session, token_hash: str, lifetime: timedelta = LIFETIME) -> str:
    """A new session for the token of this hash; the id for the cookie (shown only here).
    Sessions past their expiry go at the same time (the caller commits)."""
    now = utcnow()
    session.execute(delete(PortalSession).where(PortalSession.expires_at <= now))
    secret = secrets.token_urlsafe(32)
    session.add(PortalSession(id_hash=hash_token(secret), token_hash=token_hash, created_at=now,
                              last_seen_at=now, expires_at=now + lifetime))
    return secret


def find_live_session(session: Session, secret: str, admin_token_hash: str | None
                      ) -> tuple[PortalSession, ApiToken | None] | None:
    """The live session of this cookie id and its API token (None: it was made with the
    configured admin token, `admin_token_hash`); None when the session or its token is dead."""
    row = session.execute(
        select(PortalSession, ApiToken)
        .outerjoin(ApiToken, ApiToken.token_hash == PortalSession.token_hash)
        .where(PortalSession.id_hash == hash_token(secret))).first()
    if row is None:
        return None
    portal_session, token = row
    if portal_session.ended_at is not None or portal_session.expires_at <= utcnow():
        return None
    if token is None:
        # the admin token lives in the settings: changing it ends the sessions made with it
        if portal_session.token_hash != admin_token_hash:
            return None
    elif not is_live(token):
        return None
    return portal_session, token


def touch(session: Session, session_id: uuid.UUID) -> None:
    """Record that the session was used (once a minute at most: the WHERE keeps it cheap)."""
    now = utcnow()
    session.execute(update(PortalSession).where(
        PortalSession.id == session_id,
        PortalSession.last_seen_at < now - LAST_SEEN_EVERY).values(last_seen_at=now))


def end_session(session: Session, secret: str) -> None:
    """Sign out: the session of this cookie id ends (every copy of the cookie with it)."""
    session.execute(update(PortalSession).where(
        PortalSession.id_hash == hash_token(secret),
        PortalSession.ended_at.is_(None)).values(ended_at=utcnow()))


def end_sessions_of_token(session: Session, token_hash: str) -> None:
    """End every session made with the token of this hash (it was revoked)."""
    session.execute(update(PortalSession).where(
        PortalSession.token_hash == token_hash,
        PortalSession.ended_at.is_(None)).values(ended_at=utcnow()))
