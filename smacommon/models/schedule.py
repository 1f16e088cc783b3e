"""Schedules, the runbooks linked to them, and the fire times already acted on."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from smacommon.db import Base, UTCDateTime, utcnow
from smacommon.models.types import JSONType


class Schedule(Base):
    __tablename__ = "schedules"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    frequency: Mapped[str] = mapped_column(String(16))
    interval: Mapped[int] = mapped_column(Integer, default=1)
    start_time: Mapped[datetime] = mapped_column(UTCDateTime)
    expiry_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    week_days: Mapped[list[str]] = mapped_column(JSONType, default=list)
    month_days: Mapped[list[int]] = mapped_column(JSONType, default=list)
    # [{"occurrence": "Second", "day": "Tuesday"}, ...]
    monthly_occurrences: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    cron: Mapped[str] = mapped_column(String(200), default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    missed: Mapped[str] = mapped_column(String(16), default="run_once")  # or "skip"
    # the next fire time, None when none is left; beat fires what is due, one beat at a time
    next_run: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    last_run: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    links: Mapped[list[JobSchedule]] = relationship(
        back_populates="schedule", cascade="all, delete-orphan", passive_deletes=True,
        order_by="JobSchedule.created_at")

    def __repr__(self) -> str:
        return f"<Schedule {self.name}>"


class JobSchedule(Base):
    """A runbook linked to a schedule, with the parameters and group of the jobs it starts."""

    __tablename__ = "job_schedules"
    __table_args__ = (UniqueConstraint("schedule_id", "runbook_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    schedule_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("schedules.id", ondelete="CASCADE"), index=True)
    runbook_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runbooks.id", ondelete="CASCADE"), index=True)
    # the values of parameters declared secret are "***" here, and sealed in sealed_parameters
    # (smacommon.services.fixed_parameters)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    sealed_parameters: Mapped[str | None] = mapped_column(Text, default=None)
    # fixed positional arguments of every job it starts (null: none)
    arguments: Mapped[list[str] | None] = mapped_column(JSONType, default=None)
    worker_group: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    schedule: Mapped[Schedule] = relationship(back_populates="links")
    runbook = relationship("Runbook", lazy="joined")


class ScheduleFire(Base):
    """One fire time of one link, acted on: the primary key lets it happen once."""

    __tablename__ = "schedule_fires"

    job_schedule_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("job_schedules.id", ondelete="CASCADE"), primary_key=True)
    fire_time: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
