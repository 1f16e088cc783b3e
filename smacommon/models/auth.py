"""API tokens: only a hash of each secret is stored."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smacommon.db import Base, UTCDateTime, utcnow
from smacommon.models.types import JSONType


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), default="admin")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked: Mapped[bool] = mapped_column(default=False)
    # a personal token: who made it for themselves (their principal); it acts as
    # <owner>/token:<name>, never with more than the owner's role (smacommon/services/personal)
    owner: Mapped[str | None] = mapped_column(String(200), default=None, index=True)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(default=None)  # the owner's token
    owner_dn: Mapped[str | None] = mapped_column(Text, default=None)  # a directory person's
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def principal(self) -> str:
        """How bindings, the audit and started_by name it."""
        return f"{self.owner}/token:{self.name}" if self.owner else f"token:{self.name}"

    def __repr__(self) -> str:
        return f"<ApiToken {self.name} ({self.role})>"


class AuditEvent(Base):
    """One change: who, through which door, what, on what, when, from where."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_time", "time", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(Text, default="")
    client_address: Mapped[str] = mapped_column(String(64), default="")
    # api, portal, cli, job or webhook (events from before 0008 all came through the API)
    door: Mapped[str] = mapped_column(String(16), default="api", server_default="api")
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)

    @property
    def created_at(self) -> datetime:  # for keyset paging
        return self.time

    def __repr__(self) -> str:
        return f"<AuditEvent {self.actor} {self.action} {self.target}>"
