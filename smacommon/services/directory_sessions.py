"""Sessions of directory (LDAP) and OpenID Connect people: a portal sign-in's cookie id, or
the bearer secret `sma login --user` saves. Only the secret's SHA-256 is kept; the role is the
one the directory (or provider) gave at the last check (smaweb.ldapauth and smaweb.oidcauth
check again when it is due).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from smacommon.db import utcnow
from smacommon.directory import Person
from smacommon.models import DirectorySession
from smacommon.services.tokens import hash_token

SECRET_PREFIX = "smausr_"  # a person's bearer secret, never an API token's
LIFETIME = timedelta(hours=12)
LAST_SEEN_EVERY = timedelta(minutes=1)


def open_session(session: Session, person: Person, door: str,
                 lifetime: timedelta = LIFETIME,
                 refresh_token: str | None = None) -> tuple[DirectorySession, str]:
    """A new session for `person` and its secret (shown only here); expired sessions go at
    the same time (the caller commits). `refresh_token`: an OpenID provider's, encrypted."""
    now = utcnow()
    session.execute(delete(DirectorySession).where(DirectorySession.expires_at <= now))
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = DirectorySession(id_hash=hash_token(secret), door=door, user_name=person.name,
                           user_dn=person.dn, role=person.role or "",
                           groups=list(person.groups), created_at=now,
                           last_seen_at=now, checked_at=now, expires_at=now + lifetime,
                           source=person.source, refresh_token=refresh_token)
    session.add(row)
    session.flush()
    return row, secret


def find_live_session(session: Session, secret: str, door: str) -> DirectorySession | None:
    """The live (not ended, not expired) session of this secret opened through `door` (a
    portal cookie's secret is no bearer token, nor the other way round)."""
    row = session.scalar(select(DirectorySession).where(
        DirectorySession.id_hash == hash_token(secret)))
    if row is None or row.door != door or row.ended_at is not None \
            or row.expires_at <= utcnow():
        return None
    return row


def is_due(row: DirectorySession, refresh_seconds: float) -> bool:
    """Whether the person's groups must be read again before this request."""
    return row.checked_at <= utcnow() - timedelta(seconds=refresh_seconds)


def checked(session: Session, session_id: uuid.UUID, person: Person,
            refresh_token: str | None = None) -> None:
    """The directory (or provider) was asked again: the role and groups it gave now, and
    when; an OpenID provider's new refresh token (encrypted) replaces the used one."""
    now = utcnow()
    values = {"role": person.role, "groups": list(person.groups), "checked_at": now,
              "last_seen_at": now}
    if refresh_token is not None:
        values["refresh_token"] = refresh_token
    session.execute(update(DirectorySession).where(DirectorySession.id == session_id)
                    .values(**values))


def touch(session: Session, session_id: uuid.UUID) -> None:
    """Record that the session was used (once a minute at most)."""
    now = utcnow()
    session.execute(update(DirectorySession).where(
        DirectorySession.id == session_id,
        DirectorySession.last_seen_at < now - LAST_SEEN_EVERY).values(last_seen_at=now))


def end(session: Session, session_id: uuid.UUID) -> None:
    """End one session (the person left their groups, or the directory forgot them)."""
    session.execute(update(DirectorySession).where(
        DirectorySession.id == session_id,
        DirectorySession.ended_at.is_(None)).values(ended_at=utcnow()))


def end_session(session: Session, secret: str) -> None:
    """Sign out: the session of this secret ends (every copy of it with it)."""
    session.execute(update(DirectorySession).where(
        DirectorySession.id_hash == hash_token(secret),
        DirectorySession.ended_at.is_(None)).values(ended_at=utcnow()))
