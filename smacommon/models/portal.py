"""Portal sign-ins, kept on the server so that signing out or revoking a token ends them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smacommon.db import Base, UTCDateTime, utcnow
from smacommon.models.types import JSONType


class PortalSession(Base):
    """One sign-in: the browser's cookie holds a random id; only its hash is kept here."""

    __tablename__ = "portal_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # the token signed in with, by its hash (the admin token has no row in api_tokens)
    token_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def __repr__(self) -> str:
        return f"<PortalSession {self.id} ended={self.ended_at}>"


class DirectorySession(Base):
    """One sign-in of a person from a directory (LDAP) or an OpenID provider (`source`),
    from the portal (its cookie holds a random id) or the API (`sma login --user`: a bearer
    secret); only the secret's hash is kept. Their role is read again when `checked_at` is
    older than SMA_LDAP_REFRESH_SECONDS (SMA_OIDC_REFRESH_SECONDS). For OpenID people
    `user_dn` holds the provider's `sub`, and `refresh_token` its refresh token, encrypted
    (none: the session ends at its refresh)."""

    __tablename__ = "directory_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    door: Mapped[str] = mapped_column(String(16))  # portal or api
    user_name: Mapped[str] = mapped_column(String(128), index=True)
    user_dn: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    # the DNs (normalized) of the person's groups at the last check: for group: role bindings
    groups: Mapped[list[str] | None] = mapped_column(JSONType, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    source: Mapped[str] = mapped_column(String(8), default="ldap", server_default="ldap")
    refresh_token: Mapped[str | None] = mapped_column(Text, default=None)

    def __repr__(self) -> str:
        return f"<DirectorySession {self.user_name} ({self.role}) ended={self.ended_at}>"
