"""Jobs and the records they write."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from smacommon.db import Base, UTCDateTime, utcnow
from smacommon.models.types import JSONType
from smacommon.states import AttemptCause, JobStatus


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_created", "created_at", "id"),
        # each filtered order ends with id: a cursor (created_at, id) seeks (migration 0020)
        Index("ix_jobs_status_created", "status", "created_at", "id"),
        Index("ix_jobs_runbook_created", "runbook_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    runbook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runbooks.id", ondelete="CASCADE"))
    runbook_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("runbook_versions.id", ondelete="SET NULL"), default=None
    )
    is_test: Mapped[bool] = mapped_column(default=False)
    # a test job runs the draft as it was when the test started
    test_content: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.NEW.value)
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # a WaitingFor while its status_reason says why it waits (New, Resuming; Suspended
    # when its worker shut down)
    waiting_for: Mapped[str | None] = mapped_column(String(16), default=None)
    exception: Mapped[str | None] = mapped_column(Text, default=None)
    # the values of parameters declared secret are "***" here, and sealed in sealed_parameters
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    sealed_parameters: Mapped[str | None] = mapped_column(Text, default=None)
    # positional arguments, in order (smacommon.arguments); null when none were given
    arguments: Mapped[list[str] | None] = mapped_column(JSONType, default=None)
    # the pinned requirements it runs with (smacommon.requirements): its version's, or for a
    # draft test the draft's; null: the worker's own interpreter
    requirements: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    worker_group: Mapped[str] = mapped_column(String(64), default="default")
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    started_by: Mapped[str] = mapped_column(String(200), default="")
    parent_job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), default=None
    )
    # 0 for a job started from outside; a child's is its parent's + 1 (cut off at a limit)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    # a child whose parent waits for it: stopping the parent stops it
    parent_waits: Mapped[bool] = mapped_column(default=False)
    # the runbook's last checkpoint, sealed (smacommon.sealing); `checkpoint` is one kept in
    # clear before 0008, read on resume and replaced by the next
    sealed_checkpoint: Mapped[str | None] = mapped_column(Text, default=None)
    checkpoint: Mapped[Any | None] = mapped_column(JSONType, default=None)
    # when the runbook wrote the checkpoint kept (null: none)
    checkpoint_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # the run's number: 1, then + 1 each time it is resumed (job_attempts has one row each)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    exit_code: Mapped[int | None] = mapped_column(Integer, default=None)
    # what its last run used, where the worker could measure it (smaworker/resources.py)
    cpu_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    peak_memory_mb: Mapped[int | None] = mapped_column(Integer, default=None)
    pid: Mapped[int | None] = mapped_column(Integer, default=None)
    # how its last run was started: "warm" (a pre-started Python host, smaworker.warm) or
    # "cold" (a process started for it); null until it runs
    engine_path: Mapped[str | None] = mapped_column(String(8), default=None)
    # the process running the job renews this; past it, the job is lost (see the reaper)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # hash of the job's own API token, valid only while the job is active
    token_hash: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.status}>"


class JobStream(Base):
    __tablename__ = "job_streams"
    # SQLite stores the records in their key's order, in one B-tree (migration 0021)
    __table_args__ = {"sqlite_with_rowid": False}

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # the attempt (run) of the job that wrote it
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    stream: Mapped[str] = mapped_column(String(16))
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    text: Mapped[str] = mapped_column(Text, default="")
    value: Mapped[Any | None] = mapped_column(JSONType, default=None)

    def __repr__(self) -> str:
        return f"<JobStream {self.job_id}#{self.seq} {self.stream}>"


class JobStatusEvent(Base):
    """One transition of a job: its status history."""

    __tablename__ = "job_status_events"
    __table_args__ = (Index("ix_job_status_events_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    # a smacommon.states.ReasonCode where the move has one
    reason_code: Mapped[str | None] = mapped_column(String(32), default=None)

    def __repr__(self) -> str:
        return f"<JobStatusEvent {self.job_id} {self.status}>"


_CAUSES = {AttemptCause.FIRST.value: "first run",
           AttemptCause.USER.value: "resumed by a user",
           AttemptCause.WORKER_LOST.value: "resumed after its worker was lost",
           AttemptCause.WORKER_SHUTDOWN.value: "resumed after the worker shut down"}
_AFTER = {AttemptCause.USER.value: "after a user resumed it",
          AttemptCause.WORKER_LOST.value: "after its worker was lost",
          AttemptCause.WORKER_SHUTDOWN.value: "after the worker shut down"}


def _clock(moment: datetime, day_of: datetime | None) -> str:
    """`12:03:07 UTC`, with the date when it is not the day of `day_of`."""
    if day_of is not None and moment.date() == day_of.date():
        return moment.strftime("%H:%M:%S UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


class JobAttempt(Base):
    """One run of a job: who ran it, when, why it started and how it ended."""

    __tablename__ = "job_attempts"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # why it started: an AttemptCause, and the reason in words
    cause: Mapped[str] = mapped_column(String(16), default=AttemptCause.FIRST.value)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    # null until a worker claims it (a resumed job waits for one)
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # when the checkpoint it continued from was written (null: it began from the start)
    resumed_from_checkpoint_at: Mapped[datetime | None] = mapped_column(UTCDateTime,
                                                                         default=None)
    # its records are numbered after this seq (the job's last record when it started)
    after_seq: Mapped[int | None] = mapped_column(Integer, default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # the job's status when the attempt ended (Resuming: its worker was lost), and why
    status: Mapped[str | None] = mapped_column(String(16), default=None)
    end_reason: Mapped[str | None] = mapped_column(Text, default=None)

    @property
    def cause_text(self) -> str:
        """Why it started, in words ("resumed after its worker was lost")."""
        return _CAUSES.get(self.cause, self.cause)

    @property
    def summary(self) -> str:
        """One line for people: "Attempt 2 — resumed on worker w1 from the checkpoint of
        12:03:07 UTC after its worker was lost" (the marker between attempts' output)."""
        head = f"Attempt {self.attempt} — "
        if self.started_at is None and self.ended_at is not None:
            return f"{head}never ran ({self.status})"
        if self.cause == AttemptCause.FIRST.value:
            return head + (f"started on worker {self.worker}" if self.started_at is not None
                           else "waiting for a worker")
        doing = (f"resumed on worker {self.worker}" if self.started_at is not None
                 else "waiting for a worker to resume it")
        checkpoint = self.resumed_from_checkpoint_at
        since = (f"from the checkpoint of {_clock(checkpoint, self.started_at)}"
                 if checkpoint is not None else "from the start (no checkpoint)")
        return f"{head}{doing} {since} {_AFTER.get(self.cause, '')}".rstrip()

    def __repr__(self) -> str:
        return f"<JobAttempt {self.job_id}#{self.attempt} {self.cause}>"
