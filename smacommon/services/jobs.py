"""Job services: start, stop, suspend, resume, and move a job from one status to the next."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.orm import Session, make_transient_to_detached

from smacommon import arguments as positional
from smacommon import metrics
from smacommon.db import on_commit, utcnow, when_committed
from smacommon.errors import IllegalTransition, JobNotFound, NotPublished
from smacommon.models import Job, JobStatusEvent, Runbook, Worker
from smacommon.parameters import validate
from smacommon.prepared import execute
from smacommon.sealing import seal_parameters
from smacommon.services.audit import record
from smacommon.services.job_lookup import get_job  # noqa: F401 - its home for callers
from smacommon.services.moves import ADD_EVENT, CLOSE_ATTEMPT, move_statement
from smacommon.services.runbooks import draft_parameters
from smacommon.services.workers import is_online
from smacommon.states import (
    FINAL_STATUSES,
    RESTING_STATUSES,
    AttemptCause,
    JobStatus,
    ReasonCode,
    WaitingFor,
    allowed_sources,
)
from smacommon.workergroups import validate_worker_group

if TYPE_CHECKING:
    from smacommon.services.requirements import ResolvedDraft

Enqueue = Callable[[str, str], None]
log = logging.getLogger(__name__)
S = JobStatus
_jobs = Job.__table__
_events = JobStatusEvent.__table__
_INSERT_JOB = insert(_jobs)
# every column a new job's row may leave to its default, with that default: a job is
# inserted with all of them (the answer shows them; a multi-row INSERT of a batch needs the
# same keys in every row; an ORM object made from the row loads nothing more)
NEW_JOB_DEFAULTS = {
    "exception": None, "worker": None, "sealed_checkpoint": None, "checkpoint": None,
    "checkpoint_at": None, "attempt": 1, "exit_code": None, "cpu_seconds": None,
    "peak_memory_mb": None, "pid": None, "engine_path": None, "lease_expires_at": None,
    "token_hash": None, "start_time": None, "end_time": None}
# a job that moves here leaves its attempt (Resuming from an active status: it was lost)
_ENDS_ATTEMPT = FINAL_STATUSES | {S.SUSPENDED, S.RESUMING}


def default_enqueue(job_id: str, group: str) -> None:
    from smacommon.queue import enqueue_job

    try:
        enqueue_job(job_id, group)
    except Exception:  # the job is committed; the reaper sends it again (broker down?)
        log.warning("could not queue job %s to %s now; it will be sent again", job_id, group,
                    exc_info=True)


_REASON_TTL = 1.0
_reasons: dict[str, tuple[float, str | None]] = {}


def no_worker_reason(session: Session | Connection, group: str,
                     heartbeat_seconds: float) -> str | None:
    """Why a job of `group` would wait: no worker of the group has a fresh heartbeat.

    Remembered for a second per group (per process): a burst of starts asks once, and a
    stale answer only leaves a reason on a job its worker clears when it claims it.
    """
    now = time.monotonic()
    cached = _reasons.get(group)
    if cached is not None and cached[0] > now:
        return cached[1]
    reason = _no_worker_reason(session, group, heartbeat_seconds)
    if len(_reasons) > 1000:
        _reasons.clear()
    _reasons[group] = (now + _REASON_TTL, reason)
    return reason


def _no_worker_reason(session: Session | Connection, group: str,
                      heartbeat_seconds: float) -> str | None:
    online = session.execute(select(func.count()).select_from(Worker.__table__).where(
        Worker.worker_group == group, is_online(heartbeat_seconds))).scalar()
    if online:
        return None
    return (f"No worker of group {group!r} is online; the job starts as soon as one joins "
            f"(sma worker --group {group}).")


def start_job(session: Session, runbook: Runbook, parameters: dict[str, Any] | None = None, *,
              enqueue: Enqueue | None = None, **options: Any) -> Job:
    """Insert a `New` job for the published version (or the draft, for a test) and queue it
    once the caller's transaction commits (see `prepare_job` for `options`).

    Three prebuilt INSERTs (the job, its first status event, the audit event), not an ORM
    flush: every start pays for them. The job comes back as the session's Job of that row,
    every column set, as if it had been read."""
    row = {**NEW_JOB_DEFAULTS, **prepare_job(session, runbook, parameters, **options)}
    session.execute(_INSERT_JOB, row)
    session.execute(ADD_EVENT, {"job_id": row["id"], "status": S.NEW.value,
                                "time": row["created_at"], "actor": row["started_by"],
                                "reason": None, "reason_code": None})
    job_id, group = str(row["id"]), row["worker_group"]
    record(session, "job.test" if row["is_test"] else "job.start", f"/api/v1/jobs/{job_id}",
           runbook=runbook.name, worker_group=group)
    send = enqueue or default_enqueue
    on_commit(session, lambda: send(job_id, group))
    job = Job(**row)
    make_transient_to_detached(job)  # what it holds is what the row holds: nothing to write
    session.add(job)
    return job



def prepare_job(session: Session | Connection, runbook: Runbook,
                parameters: dict[str, Any] | None = None, *, worker_group: str | None = None,
                started_by: str = "", parent_job_id: uuid.UUID | None = None,
                test: bool = False, heartbeat_seconds: float = 15.0,
                extra_parameters: dict[str, Any] | None = None, depth: int = 0,
                parent_waits: bool = False, sealed_names: frozenset[str] = frozenset(),
                arguments: Any = None, draft: ResolvedDraft | None = None) -> dict[str, Any]:
    """The row of a new job, its input checked (a 4xx error names what to fix): it runs the
    published version with its requirements, a test the draft with the draft's, as `draft`
    (resolve_draft) resolved them.

    `arguments` are positional (smacommon.arguments.bind checks them against the runbook);
    `extra_parameters` are added after the check against the declarations (a webhook's
    WEBHOOKDATA, which no limit on parameters should refuse); `sealed_names` are sealed for
    the job whatever the version declares (the values a link or webhook keeps sealed)."""
    if test:
        if runbook.draft_content is None:
            raise NotPublished(f"Runbook {runbook.name!r} has no draft to test.")
        if draft is None:
            raise TypeError("a test job needs its draft resolved first (resolve_draft)")
        content: str | None = runbook.draft_content
        declared = draft_parameters(runbook, content)
        version_id, source = None, content
        requirements = draft.requirements_of(runbook)
    else:
        version = runbook.published_version
        if version is None:
            raise NotPublished(f"Runbook {runbook.name!r} has no published version; "
                               "publish it first.")
        content, declared, version_id = None, version.parameters, version.id
        source, requirements = version.content, version.requirements
    extra = extra_parameters or {}
    args, by_name = positional.bind(
        runbook.runbook_type, source,
        [d for d in declared if d["name"] not in extra], arguments, parameters)
    values = validate(by_name, parameters)
    values.update(extra)
    group = validate_worker_group(worker_group or runbook.worker_group or "default")
    new_id = uuid.uuid4()
    values, sealed = seal_parameters(declared, values, new_id, sealed_names)
    reason = no_worker_reason(session, group, heartbeat_seconds)
    now = utcnow()
    return dict(
        id=new_id, runbook_id=runbook.id, runbook_version_id=version_id, is_test=test,
        test_content=content, status=S.NEW.value, parameters=values, worker_group=group,
        sealed_parameters=sealed, arguments=args or None, requirements=requirements,
        started_by=started_by, parent_job_id=parent_job_id, created_at=now, modified_at=now,
        depth=depth, parent_waits=parent_waits,
        status_reason=reason, waiting_for=WaitingFor.WORKER.value if reason else None,
    )


def transition(session: Session | Connection, job_id: uuid.UUID, target: JobStatus, *,
               sources: frozenset[JobStatus] | None = None, actor: str = "",
               expect: dict[str, Any] | None = None, code: ReasonCode | None = None,
               **fields: Any) -> bool:
    """Move a job to `target` with one conditional UPDATE; False if its status forbids it.

    `sources` narrows the legal predecessors (e.g. a claim only from `New`); `expect` adds
    column values the row must still have (e.g. the attempt a worker runs). The move is
    recorded in the status history in the same transaction, with `code` beside the
    status_reason, and a move that ends the job's attempt closes its row in job_attempts
    (see smacommon.services.attempts); the caller commits. Two actors racing for the same
    job cannot both win: the UPDATE matches once. Core statements on the tables, built once
    per shape (smacommon.services.moves): this runs several times for every job.
    """
    allowed = allowed_sources(target)
    if sources is not None:
        allowed = allowed & sources
    now = utcnow()
    # a job that moves no longer waits for what it waited for
    values: dict[str, Any] = {"status": target.value, "modified_at": now,
                              "waiting_for": None, **fields}
    if target in FINAL_STATUSES or target == S.SUSPENDED:
        values.setdefault("end_time", now)
        values.setdefault("lease_expires_at", None)
        values.setdefault("token_hash", None)  # the job's token dies with the run
    if target in FINAL_STATUSES:  # a suspended job keeps its checkpoint; a finished one not
        values.setdefault("checkpoint", None)
        values.setdefault("sealed_checkpoint", None)
        values.setdefault("checkpoint_at", None)
    if target == S.RUNNING:
        values.setdefault("start_time", now)
    params = {f"v_{column}": value for column, value in values.items()}
    params["w_id"] = job_id
    params.update((f"w_{column}", value) for column, value in (expect or {}).items()
                  if value is not None)
    stmt = move_statement(allowed, tuple(values), tuple(
        (column, value is None) for column, value in (expect or {}).items()))
    moved = execute(session, stmt, params).first()
    if moved is None:
        return False
    execute(session, ADD_EVENT, {"job_id": job_id, "status": target.value, "time": now,
                                 "actor": actor, "reason": fields.get("status_reason"),
                                 "reason_code": code.value if code else None})
    began = None
    if target in _ENDS_ATTEMPT:  # the open attempt ends with the job's move
        began = execute(session, CLOSE_ATTEMPT, {
            "a_job_id": job_id, "a_ended_at": now, "a_status": target.value,
            "a_end_reason": fields.get("status_reason")}).scalar()
    runbook = _runbook_name(session, moved.runbook_id)
    extra = {"event": "job_transition", "job_id": str(job_id), "status": target.value,
             "runbook": runbook, "actor": actor}
    if began is not None:  # how long the attempt that ends here ran
        extra["seconds"] = round((now - began).total_seconds(), 3)
    when_committed(session, lambda: log.info("job %s %s", job_id, target.value, extra=extra))
    if target in RESTING_STATUSES:  # counted here, once, whoever moved it (worker, API, reaper)
        when_committed(session, lambda: metrics.job_ended(runbook, target.value))
    return True


_names: dict[uuid.UUID, str] = {}


def _runbook_name(session: Session | Connection, runbook_id: uuid.UUID) -> str | None:
    """A runbook's name for the logs (names never change: cached per process)."""
    name = _names.get(runbook_id)
    if name is None:
        name = session.execute(select(Runbook.__table__.c.name)
                               .where(Runbook.__table__.c.id == runbook_id)).scalar()
        if name is not None:
            if len(_names) > 10_000:
                _names.clear()
            _names[runbook_id] = name
    return name


def require_transition(session: Session | Connection, job_id: uuid.UUID, target: JobStatus,
                       **kwargs: Any) -> None:
    """Like `transition`, but a refusal is IllegalTransition naming the current status."""
    if not transition(session, job_id, target, **kwargs):
        raise IllegalTransition(job_id, current_status(session, job_id), target.value)


def current_status(session: Session | Connection, job_id: uuid.UUID) -> str:
    status = session.execute(select(_jobs.c.status).where(_jobs.c.id == job_id)).scalar()
    if status is None:
        raise JobNotFound(f"Job {job_id} not found.")
    return status


def stop_job(session: Session, job: Job, actor: str) -> None:
    """Stop a job: at once if it is not running (New, Suspended, Resuming), else ask its
    worker to end its process group (Stopping, then Stopped)."""
    reason = f"Stopped by {actor}."
    if not (transition(session, job.id, S.STOPPED, actor=actor, status_reason=reason,
                       sources=frozenset({S.NEW, S.SUSPENDED, S.RESUMING}))
            or transition(session, job.id, S.STOPPING, actor=actor, status_reason=reason)):
        raise IllegalTransition(job.id, current_status(session, job.id), S.STOPPED.value)
    record(session, "job.stop", f"/api/v1/jobs/{job.id}")
    # the children it waits on stop with it (and theirs with them)
    children = session.scalars(select(Job).where(
        Job.parent_job_id == job.id, Job.parent_waits.is_(True),
        Job.status.not_in([s.value for s in FINAL_STATUSES | {S.STOPPING}]))).all()
    for child in children:
        try:
            stop_job(session, child, actor)
        except IllegalTransition:
            pass  # it ended meanwhile


def suspend_job(session: Session, job: Job, actor: str) -> None:
    """Ask the worker to suspend a running job; it keeps its last checkpoint."""
    require_transition(session, job.id, S.SUSPENDING, actor=actor,
                       status_reason=f"Suspended by {actor}.")
    record(session, "job.suspend", f"/api/v1/jobs/{job.id}")


def resume_job(session: Session, job: Job, actor: str, enqueue: Enqueue | None = None) -> None:
    """Send a suspended job back through the queue; it continues from its last checkpoint."""
    from smacommon.services.attempts import resume_as_next_attempt

    # only from Suspended: Running -> Resuming is the reaper's move for a lost job
    if not resume_as_next_attempt(session, job.id, job.attempt, AttemptCause.USER, actor=actor,
                                  reason=f"Resumed by {actor}.",
                                  sources=frozenset({S.SUSPENDED})):
        raise IllegalTransition(job.id, current_status(session, job.id), S.RESUMING.value)
    record(session, "job.resume", f"/api/v1/jobs/{job.id}")
    job_id, group = str(job.id), job.worker_group
    send = enqueue or default_enqueue
    on_commit(session, lambda: send(job_id, group))


def status_history(session: Session, job_id: uuid.UUID) -> list[JobStatusEvent]:
    return list(session.scalars(select(JobStatusEvent).where(JobStatusEvent.job_id == job_id)
                                .order_by(JobStatusEvent.id)))
