"""The reaper: finds lost jobs and jobs whose message went missing, and sets them right.

Runs in beat (see `smaworker.beat`). Every change is one conditional UPDATE, so two beats
reaping at once, or a reaper racing a worker, cannot both act on the same job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine, delete, select, update

from smacommon.db import read_connection, utcnow
from smacommon.models import Job, Worker
from smacommon.services.attempts import (
    lost_attempts,
    resume_after_shutdown,
    resume_as_next_attempt,
)
from smacommon.services.jobs import no_worker_reason, transition
from smacommon.settings import Settings
from smacommon.states import ACTIVE_STATUSES, AttemptCause, JobStatus, ReasonCode, WaitingFor
from smacommon.workergroups import NAME_RULE, is_valid_worker_group

log = logging.getLogger(__name__)
S = JobStatus
ACTOR = "reaper"
_jobs = Job.__table__
WORKER_FORGOTTEN_AFTER = timedelta(days=1)


def reap(engine: Engine, settings: Settings, enqueue: Callable[[str, str], None]) -> dict:
    """One pass; returns what it did, by kind."""
    done = {"resumed": 0, "suspended": 0, "stopped": 0, "requeued": 0}
    now = utcnow()
    with read_connection(engine) as conn:
        lost = conn.execute(select(_jobs.c.id, _jobs.c.status, _jobs.c.attempt,
                                   _jobs.c.worker_group, _jobs.c.worker)
                            .where(_jobs.c.status.in_([s.value for s in ACTIVE_STATUSES]),
                                   _jobs.c.lease_expires_at < now)).all()
    for job_id, status, attempt, group, worker in lost:
        kind, send = _settle_lost(engine, settings, job_id, status, attempt, worker)
        if kind:
            done[kind] += 1
            log.warning("job %s: lost by worker %s while %s; %s", job_id, worker, status, kind)
        if send and is_valid_worker_group(group):  # else _requeue_waiting ends it
            enqueue(str(job_id), group)
    done["requeued"] = _requeue_waiting(engine, settings, enqueue)
    done["resumed_after_shutdown"] = _resume_after_shutdown(engine, settings, enqueue)
    done["workers_forgotten"] = _forget_workers(engine)
    return done


def _forget_workers(engine: Engine) -> int:
    """Workers silent for a day are gone for good (a restarted worker registers anew)."""
    with engine.begin() as conn:
        return conn.execute(delete(Worker.__table__).where(
            Worker.heartbeat_at < utcnow() - WORKER_FORGOTTEN_AFTER)).rowcount


def _resume_after_shutdown(engine: Engine, settings: Settings,
                           enqueue: Callable[[str, str], None]) -> int:
    """Jobs suspended when their worker shut down resume once a worker of their group is
    online (a worker does this when it registers; this pass covers the other workers of
    the group, already online)."""
    with read_connection(engine) as conn:
        groups = conn.execute(select(_jobs.c.worker_group).distinct().where(
            _jobs.c.status == S.SUSPENDED.value,
            _jobs.c.waiting_for == WaitingFor.RESTART.value)).scalars().all()
    count = 0
    for group in groups:
        if not is_valid_worker_group(group):
            continue
        with engine.begin() as conn:
            if no_worker_reason(conn, group, settings.worker_heartbeat_seconds):
                continue
            resumed = resume_after_shutdown(conn, group, actor=ACTOR)
        for job_id in resumed:
            enqueue(job_id, group)
            log.info("job %s: resumed after its worker shut down: a worker of group %r is "
                     "online", job_id, group)
        count += len(resumed)
    return count


def _settle_lost(engine: Engine, settings: Settings, job_id, status: str, attempt: int,
                 worker: str | None) -> tuple[str | None, bool]:
    expect = {"attempt": attempt, "status": status}
    with engine.begin() as conn:
        if status == S.STOPPING.value:
            ok = transition(conn, job_id, S.STOPPED, actor=ACTOR, expect=expect,
                            status_reason=f"Stopped: its worker {worker} was lost while "
                                          "stopping it.")
            return ("stopped" if ok else None), False
        if status == S.SUSPENDING.value:
            ok = transition(conn, job_id, S.SUSPENDED, actor=ACTOR, expect=expect,
                            status_reason=f"Suspended: its worker {worker} was lost while "
                                          "suspending it.")
            return ("suspended" if ok else None), False
        lost = lost_attempts(conn, job_id) + 1  # this one too
        if lost < settings.max_attempts:
            ok = resume_as_next_attempt(
                conn, job_id, attempt, AttemptCause.WORKER_LOST, actor=ACTOR,
                expect={"status": status}, code=ReasonCode.WORKER_LOST,
                reason=(f"Its worker {worker} was lost; resumed from its last checkpoint "
                        f"(attempt {attempt + 1}; lost {lost} of {settings.max_attempts} "
                        "times allowed)."))
            return ("resumed" if ok else None), ok
        ok = transition(conn, job_id, S.SUSPENDED, actor=ACTOR, expect=expect,
                        code=ReasonCode.WORKER_LOST, status_reason=(
                            f"Suspended: its worker was lost {lost} times "
                            f"(max_attempts {settings.max_attempts}); resume it to try again."))
        return ("suspended" if ok else None), False


def _requeue_waiting(engine: Engine, settings: Settings,
                     enqueue: Callable[[str, str], None]) -> int:
    """Send again jobs that have waited too long to be claimed: the message may be lost
    (Redis restarted) or the job waited for a slot or a worker. A claim makes duplicates
    harmless. A job whose worker group no queue can carry (an older sma allowed more
    names) ends Failed, saying so."""
    now = utcnow()
    stale = now - timedelta(seconds=settings.requeue_new_after_seconds)
    waiting = [S.NEW.value, S.RESUMING.value]
    with read_connection(engine) as conn:
        rows = conn.execute(select(_jobs.c.id, _jobs.c.worker_group, _jobs.c.waiting_for)
                            .where(_jobs.c.status.in_(waiting), _jobs.c.modified_at < stale)
                            .order_by(_jobs.c.created_at).limit(1000)).all()
    count = 0
    reasons: dict[str, str | None] = {}
    for job_id, group, waiting_for in rows:
        if not is_valid_worker_group(group):
            _fail_unroutable(engine, job_id, group)
            continue
        with engine.begin() as conn:
            if group not in reasons:
                reasons[group] = no_worker_reason(conn, group, settings.worker_heartbeat_seconds)
            values = {"modified_at": now}
            if reasons[group]:
                values.update(status_reason=reasons[group], waiting_for=WaitingFor.WORKER.value)
            elif waiting_for == WaitingFor.WORKER.value:  # a worker joined since
                values.update(status_reason=None, waiting_for=None)
            touched = conn.execute(update(_jobs).where(
                _jobs.c.id == job_id, _jobs.c.status.in_(waiting),
                _jobs.c.modified_at < stale).values(**values)).rowcount
        if touched:  # another beat did not take it first
            enqueue(str(job_id), group)
            count += 1
    return count


def _fail_unroutable(engine: Engine, job_id, group: str) -> None:
    with engine.begin() as conn:
        ended = transition(conn, job_id, S.FAILED, actor=ACTOR,
                           sources=frozenset({S.NEW, S.RESUMING}), status_reason=(
                               f"Failed: {group!r} is not a valid worker group ({NAME_RULE}), "
                               "so no worker can receive the job; start it again with "
                               "another worker_group."))
    if ended:
        log.warning("job %s: worker group %r cannot be routed; the job failed", job_id, group)
