"""Runbook workers, as they register themselves."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from smacommon.db import Base, UTCDateTime, utcnow
from smacommon.models.types import JSONType


class Worker(Base):
    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    worker_group: Mapped[str] = mapped_column(String(64), default="default")
    engines: Mapped[list[str]] = mapped_column(JSONType, default=list)
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    version: Mapped[str] = mapped_column(String(32), default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the keys of the runbook environments built on its host (smaworker.environments)
    environments: Mapped[list[str] | None] = mapped_column(JSONType, default=None)

    def __repr__(self) -> str:
        return f"<Worker {self.name} ({self.worker_group})>"
