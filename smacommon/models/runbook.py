"""Runbooks and their published versions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from smacommon.db import Base, UTCDateTime, utcnow
from smacommon.models.types import JSONType


class Runbook(Base):
    __tablename__ = "runbooks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    runbook_type: Mapped[str] = mapped_column(String(16))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    log_verbose: Mapped[bool] = mapped_column(default=False)
    log_progress: Mapped[bool] = mapped_column(default=False)
    log_debug: Mapped[bool] = mapped_column(default=False)
    timeout_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    worker_group: Mapped[str] = mapped_column(String(64), default="default")
    max_concurrent_jobs: Mapped[int | None] = mapped_column(Integer, default=None)
    # resource limits of its jobs; null: the worker's default (smaworker/limits.py)
    max_memory_mb: Mapped[int | None] = mapped_column(Integer, default=None)
    max_processes: Mapped[int | None] = mapped_column(Integer, default=None)
    max_open_files: Mapped[int | None] = mapped_column(Integer, default=None)
    max_cpu_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    max_file_mb: Mapped[int | None] = mapped_column(Integer, default=None)
    # explicit parameter declarations; when null they are read from the content at publish
    declared_parameters: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, default=None)
    draft_content: Mapped[str | None] = mapped_column(Text, default=None)
    draft_edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    published_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("runbook_versions.id", use_alter=True, name="fk_runbook_published_version"),
        default=None,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    published_version: Mapped[RunbookVersion | None] = relationship(
        foreign_keys=[published_version_id], post_update=True, lazy="joined"
    )

    def __repr__(self) -> str:
        return f"<Runbook {self.name} ({self.runbook_type})>"


class RunbookVersion(Base):
    __tablename__ = "runbook_versions"
    __table_args__ = (UniqueConstraint("runbook_id", "number", name="uq_runbook_version_number"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    runbook_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runbooks.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # the pinned set of its inline requirements (smacommon.requirements); null: none
    requirements: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by: Mapped[str] = mapped_column(String(200), default="")

    def __repr__(self) -> str:
        return f"<RunbookVersion {self.runbook_id} v{self.number}>"
