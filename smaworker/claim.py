"""The job row as one run holds it: the claim (within the runbook's concurrency limit) that
opens the run's attempt, the lease renewed while the runbook runs, and the end of a lost
earlier run on this host."""

from __future__ import annotations

import logging
import os
import signal
import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from smacommon.db import utcnow
from smacommon.models import Job, Runbook, RunbookVersion
from smacommon.outages import once_more_if_cut
from smacommon.prepared import execute, in_values
from smacommon.services.attempts import attempt_after_seq, begin_attempt
from smacommon.services.jobs import transition
from smacommon.states import ACTIVE_STATUSES, JobStatus, WaitingFor
from smaworker.limits import LIMITS

log = logging.getLogger(__name__)

_jobs = Job.__table__
_runbooks = Runbook.__table__
_versions = RunbookVersion.__table__
_ACTIVE = [s.value for s in ACTIVE_STATUSES]
_CLAIMABLE = frozenset({JobStatus.NEW, JobStatus.RESUMING})


@dataclass
class ClaimedJob:
    """What a run needs of its job row, read by the claim."""

    attempt: int
    parameters: dict[str, Any] | None
    sealed_parameters: str | None
    arguments: list[str] | None
    requirements: dict[str, Any] | None  # a pinned set: the job runs in its own environment
    checkpoint: Any
    sealed_checkpoint: str | None
    checkpoint_at: datetime | None
    started_by: str
    pid: int | None
    is_test: bool
    test_content: str | None
    start_time: datetime | None
    created_at: datetime | None


@dataclass
class ClaimedRunbook:
    """What a run needs of its runbook row, read by the claim."""

    id: uuid.UUID
    name: str
    runbook_type: str
    log_verbose: bool
    log_progress: bool
    log_debug: bool
    timeout_seconds: int | None
    max_concurrent_jobs: int | None
    declared_parameters: list[dict[str, Any]] | None
    # the resource limits (smacommon.limits.RUNBOOK_LIMITS)
    max_memory_mb: int | None
    max_processes: int | None
    max_open_files: int | None
    max_cpu_seconds: int | None
    max_file_mb: int | None


@dataclass
class ClaimedVersion:
    """The published version a job runs (both None for a test job of the draft)."""

    content: str | None
    parameters: list[dict[str, Any]] | None


@dataclass
class Claim:
    """A job this run has taken, with everything read to run it."""

    job: ClaimedJob
    runbook: ClaimedRunbook
    version: ClaimedVersion
    after_seq: int = 0  # the job's last record before this attempt


_JOB_FIELDS = tuple(f.name for f in fields(ClaimedJob))
_RUNBOOK_FIELDS = tuple(f.name for f in fields(ClaimedRunbook))
if missing := set(LIMITS) - set(_RUNBOOK_FIELDS):  # a limit added to the table, not here
    raise RuntimeError(f"ClaimedRunbook lacks the runbook limits {sorted(missing)}")
_CLAIM_COLUMNS = (
    *[_jobs.c[n].label(f"job_{n}") for n in _JOB_FIELDS],
    *[_runbooks.c[n].label(f"runbook_{n}") for n in _RUNBOOK_FIELDS],
    _versions.c.content.label("version_content"),
    _versions.c.parameters.label("version_parameters"))
# built once, executed with parameters on the driver's cursor (the claim and the lease run
# for every job: see smacommon.prepared)
_READ_CLAIM = (select(*_CLAIM_COLUMNS, _jobs.c.status.label("status"),
                      _jobs.c.token_hash.label("token_hash"))
               .join(_runbooks, _runbooks.c.id == _jobs.c.runbook_id)
               .outerjoin(_versions, _versions.c.id == _jobs.c.runbook_version_id)
               .where(_jobs.c.id == bindparam("job_id")))
_RENEW = (update(_jobs)
          .where(_jobs.c.id == bindparam("job_id"), _jobs.c.attempt == bindparam("run_attempt"),
                 in_values(_jobs.c.status, _ACTIVE))
          .values(lease_expires_at=bindparam("lease")))
_RENEW_OURS = _RENEW.where(_jobs.c.worker == bindparam("run_worker"))
_READ_STATUS = (select(_jobs.c.status, _jobs.c.attempt, _jobs.c.worker)
                .where(_jobs.c.id == bindparam("job_id")))


def claim_job(engine: Engine, job_id: uuid.UUID, *, worker: str, actor: str,
              lease_seconds: float, token_hash: str) -> Claim | None:
    """Take the job with one conditional UPDATE, in the transaction that also reads all
    it needs to run it; respect the runbook's concurrency limit. None: not taken.

    A claim whose connection was cut is tried once more; when the first try had committed
    (only its answer was lost), the job is found claimed with this run's token, so it is
    this run's, not "claimed by someone else"."""
    return once_more_if_cut(lambda: _claim_once(engine, job_id, worker=worker, actor=actor,
                                                lease_seconds=lease_seconds,
                                                token_hash=token_hash))


def _claim_once(engine: Engine, job_id: uuid.UUID, *, worker: str, actor: str,
                lease_seconds: float, token_hash: str) -> Claim | None:
    with engine.begin() as conn:
        row = execute(conn, _READ_CLAIM, {"job_id": job_id}).first()
        if row is None:
            log.info("job %s: no such job; message dropped", job_id)
            return None
        claim = Claim(ClaimedJob(**{n: getattr(row, f"job_{n}") for n in _JOB_FIELDS}),
                      ClaimedRunbook(**{n: getattr(row, f"runbook_{n}")
                                        for n in _RUNBOOK_FIELDS}),
                      ClaimedVersion(row.version_content, row.version_parameters))
        if row.status == JobStatus.ACTIVATING.value and row.token_hash == token_hash:
            # this run's own claim, committed on a connection cut since: its attempt is open
            claim.after_seq = attempt_after_seq(conn, job_id, claim.job.attempt)
            return claim
        if claim.runbook.max_concurrent_jobs and not _slot_free(conn, job_id, claim.runbook):
            return None
        lease = utcnow() + timedelta(seconds=lease_seconds)
        attempt = claim.job.attempt
        claimed = transition(conn, job_id, JobStatus.ACTIVATING, actor=actor,
                             sources=_CLAIMABLE, expect={"attempt": attempt}, worker=worker,
                             status_reason=None, lease_expires_at=lease, token_hash=token_hash)
        if claimed:
            claim.after_seq = begin_attempt(
                conn, job_id, attempt, worker=worker, started_by=claim.job.started_by,
                checkpoint_at=claim.job.checkpoint_at,
                # an earlier attempt may have written records without reaching Running
                # (suspended while it waited for its keys or its environment)
                ran_before=attempt > 1 or claim.job.start_time is not None)
    if not claimed:
        log.info("job %s: already claimed or no longer runnable; message dropped", job_id)
        return None
    return claim


def _slot_free(conn: Connection, job_id: uuid.UUID, runbook: ClaimedRunbook) -> bool:
    # lock the runbook row (PostgreSQL; SQLite's write transaction is already exclusive)
    # so two workers cannot both take the last slot
    conn.execute(select(_runbooks.c.id).where(_runbooks.c.id == runbook.id)
                 .with_for_update())
    running = conn.execute(select(func.count()).select_from(_jobs).where(
        _jobs.c.runbook_id == runbook.id, _jobs.c.status.in_(_ACTIVE))).scalar()
    if running < runbook.max_concurrent_jobs:
        return True
    conn.execute(update(_jobs).where(
        _jobs.c.id == job_id,
        _jobs.c.status.in_([JobStatus.NEW.value, JobStatus.RESUMING.value]))
        .values(waiting_for=WaitingFor.SLOT.value, status_reason=(
            f"Waiting for a free slot: runbook {runbook.name!r} already runs {running} "
            f"job(s), its max_concurrent_jobs.")))
    log.info("job %s: runbook at its concurrency limit; the job waits", job_id)
    return False


def check_status(engine: Engine, job_id: uuid.UUID, attempt: int, worker: str,
                 lease_seconds: float, renew: bool) -> str | None:
    """The job's status as seen by this attempt (None: it is no longer ours); renews
    the lease when asked."""
    with engine.begin() as conn:
        if renew:
            execute(conn, _RENEW, {"job_id": job_id, "run_attempt": attempt,
                                  "lease": utcnow() + timedelta(seconds=lease_seconds)})
        row = execute(conn, _READ_STATUS, {"job_id": job_id}).first()
    if row is None or row.attempt != attempt or row.worker != worker:
        return None
    return row.status


def still_ours(conn: Connection, job_id: uuid.UUID, attempt: int, worker: str,
               lease_seconds: float) -> bool:
    """Renew the lease, if this run still has the job (its row is locked until `conn`
    commits, so a takeover cannot slip in between)."""
    return execute(conn, _RENEW_OURS, {
        "job_id": job_id, "run_attempt": attempt, "run_worker": worker,
        "lease": utcnow() + timedelta(seconds=lease_seconds)}).rowcount == 1


def end_previous_run(pid: int, job_id: uuid.UUID) -> None:
    """A lost earlier run of this job on this host may still live: end its process group.

    Only a process whose environment names this job is touched, so a reused pid is safe.
    """
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            if f"SMA_JOB_ID={job_id}".encode() not in fh.read().split(b"\0"):
                return
        os.killpg(pid, signal.SIGKILL)
        log.warning("job %s: ended the process group %s of its lost earlier run", job_id, pid)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
