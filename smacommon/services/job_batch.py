"""Starting many jobs at once: one transaction, three INSERTs, one message to the broker.

Each job is checked as a single start checks it (smacommon.services.jobs.prepare_job); an
item that fails stops the whole batch before anything is written, its error naming the item
(`jobs[<index>]: ...`). The rows go in as three multi-row INSERTs (jobs, their first status
event, their audit events), not one flush per job, and the run messages of all of them are
pushed to the broker in one round trip once the transaction has committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from smacommon.db import on_commit
from smacommon.errors import SmaError
from smacommon.models import Job, JobStatusEvent, Runbook
from smacommon.services.audit import record_many
from smacommon.services.jobs import NEW_JOB_DEFAULTS, log, prepare_job
from smacommon.states import JobStatus

EnqueueMany = Callable[[list[tuple[str, str]]], None]
_jobs = Job.__table__
_events = JobStatusEvent.__table__


@dataclass
class JobRequest:
    """One job of a batch: what a single start takes."""

    runbook: Runbook
    parameters: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)


def start_jobs(session: Session, requests: Sequence[JobRequest], *,
               enqueue: EnqueueMany | None = None) -> list[SimpleNamespace]:
    """Insert a `New` job for each request and queue them all once the caller's transaction
    commits; all or none: the first bad request raises its SmaError, prefixed with
    `jobs[<index>]: `, and nothing is written. The jobs come back as their rows, with the
    attributes of a Job (an ORM object each would cost more than its INSERT)."""
    rows = []
    for index, request in enumerate(requests):
        try:
            rows.append({**NEW_JOB_DEFAULTS, **prepare_job(session, request.runbook,
                                                    request.parameters, **request.options)})
        except SmaError as exc:
            exc.message = f"jobs[{index}]: {exc.message} No job was started."
            raise
    if not rows:
        return []
    session.execute(insert(_jobs), rows)
    session.execute(insert(_events), [
        {"job_id": row["id"], "status": JobStatus.NEW.value, "time": row["created_at"],
         "actor": row["started_by"], "reason": None, "reason_code": None} for row in rows])
    names = {request.runbook.id: request.runbook.name for request in requests}
    record_many(session, [
        ("job.test" if row["is_test"] else "job.start", f"/api/v1/jobs/{row['id']}",
         {"runbook": names[row["runbook_id"]], "worker_group": row["worker_group"]})
        for row in rows])
    queued = [(str(row["id"]), row["worker_group"]) for row in rows]
    send = enqueue or _default_enqueue
    on_commit(session, lambda: send(queued))
    return [SimpleNamespace(**row) for row in rows]


def _default_enqueue(jobs: list[tuple[str, str]]) -> None:
    from smacommon.queue import enqueue_jobs

    try:
        enqueue_jobs(jobs)
    except Exception:  # the jobs are committed; the reaper sends them again (broker down?)
        log.warning("could not queue %d job(s) now; they will be sent again", len(jobs),
                    exc_info=True)
