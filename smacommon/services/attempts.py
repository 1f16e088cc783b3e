"""Attempts: each run of a job is one, numbered from 1 (jobs.attempt is the current one).

The move that resumes a job decides why its next attempt starts and writes the attempt's
row (`resume_as_next_attempt`); the worker's claim opens it (`begin_attempt`: worker,
start, the checkpoint it continues from); `transition()` closes it when the job leaves the
attempt (a final status, Suspended, or Resuming after its worker was lost).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from smacommon.db import utcnow
from smacommon.models import Job, JobAttempt, JobStream
from smacommon.prepared import execute, insert_all
from smacommon.services.jobs import transition
from smacommon.states import AttemptCause, JobStatus, ReasonCode, WaitingFor

_attempts = JobAttempt.__table__
_jobs = Job.__table__
_streams = JobStream.__table__
# built once, executed with parameters (a claim opens an attempt for every job; a worker's
# on the driver's cursor, see smacommon.prepared)
_ADD_ATTEMPT = insert_all(_attempts, (
    "job_id", "attempt", "cause", "reason", "worker", "started_at", "after_seq", "ended_at",
    "status", "end_reason", "resumed_from_checkpoint_at"))
_REOPEN_ATTEMPT = (update(_attempts)
                   .where(_attempts.c.job_id == bindparam("a_job_id"),
                          _attempts.c.attempt == bindparam("a_attempt")))
_LAST_SEQ = select(func.max(_streams.c.seq)).where(_streams.c.job_id == bindparam("job_id"))


def resume_as_next_attempt(session: Session | Connection, job_id: uuid.UUID, attempt: int,
                           cause: AttemptCause, *, actor: str, reason: str,
                           sources: frozenset[JobStatus] | None = None,
                           expect: dict[str, Any] | None = None, **fields: Any) -> bool:
    """Move the job, now at `attempt`, to Resuming as attempt `attempt + 1`, saying why;
    False if its status (or its attempt: another actor moved it first) forbids it.

    The caller commits; a worker of its group then claims it (`begin_attempt`)."""
    moved = transition(session, job_id, JobStatus.RESUMING, sources=sources, actor=actor,
                       expect={**(expect or {}), "attempt": attempt}, attempt=attempt + 1,
                       status_reason=reason, lease_expires_at=None, end_time=None, **fields)
    if moved:
        session.execute(insert(_attempts).values(job_id=job_id, attempt=attempt + 1,
                                                 cause=cause.value, reason=reason))
    return moved


def begin_attempt(conn: Connection, job_id: uuid.UUID, attempt: int, *, worker: str,
                  started_by: str, checkpoint_at: datetime | None, ran_before: bool) -> int:
    """Open the attempt a worker just claimed (in the claim's transaction); returns the
    job's last record number so far (`ran_before`: it may have records), after which the
    attempt's records are numbered."""
    after_seq = 0
    if ran_before:
        after_seq = conn.execute(_LAST_SEQ, {"job_id": job_id}).scalar() or 0
    values = {"worker": worker, "started_at": utcnow(), "after_seq": after_seq,
              "ended_at": None, "status": None, "end_reason": None,
              "resumed_from_checkpoint_at": checkpoint_at if attempt > 1 else None}
    if attempt > 1 and conn.execute(_REOPEN_ATTEMPT, {
            "a_job_id": job_id, "a_attempt": attempt, **values}).rowcount:
        return after_seq
    # the first run; or a job resumed by an sma without attempts (only its reaper resumed)
    first = attempt == 1
    execute(conn, _ADD_ATTEMPT, {
        "job_id": job_id, "attempt": attempt,
        "cause": (AttemptCause.FIRST if first else AttemptCause.WORKER_LOST).value,
        "reason": f"Started by {started_by}." if first and started_by else None, **values})
    return after_seq


def attempt_after_seq(conn: Connection, job_id: uuid.UUID, attempt: int) -> int:
    """The record number an open attempt's records are numbered after (begin_attempt's)."""
    return conn.execute(select(_attempts.c.after_seq).where(
        _attempts.c.job_id == job_id, _attempts.c.attempt == attempt)).scalar() or 0


def lost_attempts(conn: Session | Connection, job_id: uuid.UUID) -> int:
    """How many of the job's attempts so far ended because their worker was lost (each
    started the next one; a user's resume or a worker's shutdown does not count)."""
    return conn.execute(select(func.count()).select_from(_attempts).where(
        _attempts.c.job_id == job_id,
        _attempts.c.cause == AttemptCause.WORKER_LOST.value)).scalar() or 0


def record_range(session: Session, job_id: uuid.UUID, attempt: int) -> tuple[int, int | None]:
    """The seqs an attempt's records lie within: after the first, up to the second (None:
    no bound); the key's own range, so a filter on one attempt reads no other's records."""
    bounds = dict(session.execute(select(_attempts.c.attempt, _attempts.c.after_seq).where(
        _attempts.c.job_id == job_id, _attempts.c.attempt.in_((attempt, attempt + 1)))).all())
    return bounds.get(attempt) or 0, bounds.get(attempt + 1)


def job_attempts(session: Session, job_id: uuid.UUID) -> list[JobAttempt]:
    """The job's attempts, first first."""
    return list(session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id)
                                .order_by(JobAttempt.attempt)))


def resume_after_shutdown(conn: Connection, group: str, actor: str,
                          limit: int = 1000) -> list[str]:
    """Move the jobs of `group` suspended because their worker shut down to Resuming, as a
    worker of the group is online (their next attempt, not counted toward
    SMA_MAX_ATTEMPTS); their ids, for the caller to queue once this commits. A job a user
    suspended stays."""
    rows = conn.execute(select(_jobs.c.id, _jobs.c.attempt).where(
        _jobs.c.status == JobStatus.SUSPENDED.value,
        _jobs.c.waiting_for == WaitingFor.RESTART.value,
        _jobs.c.worker_group == group).order_by(_jobs.c.created_at).limit(limit)).all()
    resumed = []
    for job_id, attempt in rows:
        if resume_as_next_attempt(
                conn, job_id, attempt, AttemptCause.WORKER_SHUTDOWN, actor=actor,
                sources=frozenset({JobStatus.SUSPENDED}),
                expect={"waiting_for": WaitingFor.RESTART.value},
                code=ReasonCode.WORKER_SHUTDOWN,
                reason=(f"Resumed from its last checkpoint after its worker shut down: a "
                        f"worker of group {group!r} is online (attempt {attempt + 1}; not "
                        "counted toward SMA_MAX_ATTEMPTS).")):
            resumed.append(str(job_id))
    return resumed
