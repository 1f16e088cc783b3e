"""Webhooks: a secret URL that starts one runbook; only the token's hash is kept."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from smacommon.db import Base, UTCDateTime, utcnow
from smacommon.models.types import JSONType


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    runbook_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runbooks.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # the values of parameters declared secret are "***" here, and sealed in sealed_parameters
    # (smacommon.services.fixed_parameters)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    sealed_parameters: Mapped[str | None] = mapped_column(Text, default=None)
    # fixed positional arguments of every job it starts (null: none)
    arguments: Mapped[list[str] | None] = mapped_column(JSONType, default=None)
    worker_group: Mapped[str | None] = mapped_column(String(64), default=None)
    enabled: Mapped[bool] = mapped_column(default=True)
    expiry_time: Mapped[datetime] = mapped_column(UTCDateTime)
    last_invoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    runbook = relationship("Runbook", lazy="joined")

    def __repr__(self) -> str:
        return f"<Webhook {self.name}>"
