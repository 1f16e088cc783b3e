"""How a run ends: the final status from the runbook's exit (its code, the signal or the
resource limit that ended it, or why the worker ended it), written with the last records
in one transaction, tried again while the database cannot be reached; then the jobs that
wait for the runbook's slot are sent again."""

from __future__ import annotations

import functools
import logging
import signal
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from smacommon.db import is_transient, read_connection, utcnow, when_committed
from smacommon.models import Job
from smacommon.services.jobs import current_status, transition
from smacommon.states import JobStatus, ReasonCode, WaitingFor
from smacommon.streams import ERROR
from smaworker.capture import StreamWriter
from smaworker.lease import RENEW_WITHIN_SECONDS
from smaworker.limits import limit_reason
from smaworker.resources import JobResources, JobUsage
from smaworker.supervise import Ending

if TYPE_CHECKING:
    from smaworker.runner import JobRunner

log = logging.getLogger(__name__)

_jobs = Job.__table__


def finish_run(runner: JobRunner, writer: StreamWriter, outcome: int | None,
               ending: Ending | None, resources: JobResources, rusage: Any) -> None:
    """Record how the runbook's process ended (`outcome`: its exit status)."""
    if ending is not None and ending.status is None:
        log.warning("job %s: %s", runner.job_id, ending.reason)
        return
    usage = resources.usage(rusage)
    if ending is not None:
        finish(runner, writer, ending.status, exit_code=outcome, reason=ending.reason,
               exception=ending.reason if ending.status == JobStatus.FAILED else None,
               usage=usage, code=ending.code)
    elif outcome == 0:
        finish(runner, writer, JobStatus.COMPLETED, exit_code=0, usage=usage)
    else:
        excerpt = writer.errors.text()
        reason = exit_reason(outcome)
        limit = resources.limit_hit(outcome, list(writer.errors.tail), usage)
        if limit is not None:
            reason = limit_reason(resources.limits, limit, reason)
            writer.add(ERROR, reason)
        finish(runner, writer, JobStatus.FAILED, exit_code=outcome, reason=reason,
               exception=excerpt or reason, usage=usage)


def finish(runner: JobRunner, writer: StreamWriter, status: JobStatus, *,
           exit_code: int | None, reason: str | None = None, exception: str | None = None,
           usage: JobUsage | None = None, code: ReasonCode | None = None) -> None:
    """The last records and the final status, in one transaction; tried again for
    SMA_DB_RETRY_SECONDS while the database cannot be reached."""
    restart = status == JobStatus.SUSPENDED and code == ReasonCode.WORKER_SHUTDOWN
    job_id, attempt = runner.job_id, runner.attempt
    if status == JobStatus.SUSPENDED:  # a checkpoint is kept only sealed: try once more
        runner.seal_checkpoint(writer, now=True)
    give_up = time.monotonic() + runner.settings.db_retry_seconds
    delay = 0.1
    wanted = status
    while True:
        status, flushed = wanted, False
        try:
            with runner.transaction() as conn:
                runner.in_batch(conn)
                fields = {"exit_code": exit_code, "status_reason": reason,
                          "exception": exception, "pid": None}
                if usage is not None:
                    fields.update(cpu_seconds=usage.cpu_seconds,
                                  peak_memory_mb=usage.peak_memory_mb)
                if restart:  # resumes by itself once a worker of its group is online
                    fields["waiting_for"] = WaitingFor.RESTART.value
                moved: list[bool] = []
                if runner.metrics is not None:  # counted as it commits, ahead of the count
                    # of its final status `transition` adds: who sees a job finished sees
                    # its run counted too (the sender thread may send between the two)
                    when_committed(conn, functools.partial(_count_run, runner, writer, moved))
                done = transition(conn, job_id, status, actor=runner.actor,
                                  expect={"attempt": attempt}, code=code, **fields)
                if not done and current_status(conn, job_id) == JobStatus.STOPPING.value:
                    # asked to stop just as it ended: the stop won the race
                    status = JobStatus.STOPPED
                    done = transition(conn, job_id, JobStatus.STOPPED, actor=runner.actor,
                                      expect={"attempt": attempt},
                                      exit_code=exit_code, pid=None)
                if done or _attempt_now(conn, runner) == attempt:
                    # a run that was taken over numbers nothing more
                    writer.flush(conn, retry=delay > 0.1)
                    flushed = True
                if done:
                    moved.append(True)
        except Exception as exc:
            writer.rolled_back()
            if not is_transient(exc) or time.monotonic() + delay > give_up:
                raise
            if delay == 0.1:
                log.warning("job %s: the database is unreachable; trying again to record "
                            "that it ended (%s)", job_id, status.value)
            time.sleep(delay)
            # every second at most, so it is recorded before beat's reaper judges the lease
            delay = min(delay * 2, RENEW_WITHIN_SECONDS)
            continue
        break
    if not flushed:
        writer.drop()
        log.warning("job %s was taken over by a later run while this one ended (%s); "
                    "its last records are left out", job_id, status.value)
        return
    writer.committed()
    if done and restart:
        log.warning("job %s suspended: the worker shut down; it resumes from its last "
                    "checkpoint as soon as a worker of group %r is online", job_id,
                    runner.settings.worker_group)
    if not done:
        log.info("job %s: not moved to %s; its status changed meanwhile", job_id, status)
    else:
        runner.final_status = status
    try:
        _wake_waiting(runner)
    except Exception:  # the reaper sends waiting jobs again in any case
        log.warning("job %s: could not wake the jobs waiting for its slot", job_id,
                    exc_info=True)


def _count_run(runner: JobRunner, writer: StreamWriter, moved: list[bool]) -> None:
    """How long the run that ended ran and what it wrote (its status is counted by
    `transition`); only once its final status is written."""
    if not moved:
        return
    ran = runner.first_seq is not None
    duration = (utcnow() - runner.run_started).total_seconds() \
        if runner.run_started is not None else None
    runner.metrics.run_ended(runner.runbook.name, duration,
                             writer.seq - runner.first_seq if ran else 0,
                             writer.text_bytes if ran else 0)


def _attempt_now(conn: Connection, runner: JobRunner) -> int | None:
    return conn.execute(select(_jobs.c.attempt).where(_jobs.c.id == runner.job_id)).scalar()


def _wake_waiting(runner: JobRunner) -> None:
    """A slot of the runbook is free: send its oldest waiting jobs again (only for a
    runbook with max_concurrent_jobs: the limit was read at claim, so others pay nothing)."""
    runbook = runner.runbook
    limit = runbook.max_concurrent_jobs if runbook is not None else None
    if runner.enqueue is None or not limit:
        return
    with read_connection(runner.engine) as conn:
        waiting = conn.execute(
            select(_jobs.c.id, _jobs.c.worker_group)
            .where(_jobs.c.runbook_id == runbook.id,
                   _jobs.c.status.in_([JobStatus.NEW.value, JobStatus.RESUMING.value]))
            .order_by(_jobs.c.created_at).limit(limit)).all()
    for job_id, group in waiting:
        runner.enqueue(str(job_id), group)


def exit_reason(code: int | None) -> str:
    """What ended the runbook, said from its exit status (negative: the signal)."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"The runbook was killed by {name}."
    return f"The runbook exited with code {code}."
