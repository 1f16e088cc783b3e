"""Job services: start a job and move it from one status to the next."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from smacommon.db import on_commit, utcnow
from smacommon.errors import IllegalTransition, JobNotFound, NotPublished, ValidationFailed
from smacommon.models import Job, Runbook
from smacommon.parameters import validate
from smacommon.services.runbooks import GROUP_RE, draft_parameters
from smacommon.states import FINAL_STATUSES, JobStatus, allowed_sources

Enqueue = Callable[[str, str], None]


def _default_enqueue(job_id: str, group: str) -> None:
    from smacommon.queue import enqueue_job

    enqueue_job(job_id, group)


def get_job(session: Session, job_id: Any) -> Job:
    """A job by id; JobNotFound for an unknown or malformed id."""
    try:
        key = job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
    except ValueError:
        raise JobNotFound(f"Job {job_id!r} not found: job ids are UUIDs.") from None
    job = session.get(Job, key)
    if job is None:
        raise JobNotFound(f"Job {job_id} not found.")
    return job


def start_job(session: Session, runbook: Runbook, parameters: dict[str, Any] | None = None, *,
              worker_group: str | None = None, started_by: str = "",
              parent_job_id: uuid.UUID | None = None, test: bool = False,
              enqueue: Enqueue | None = None) -> Job:
    """Insert a `New` job for the published version (or the draft, for a test) and queue it
    once the caller's transaction commits."""
    if test:
        if runbook.draft_content is None:
            raise NotPublished(f"Runbook {runbook.name!r} has no draft to test.")
        content: str | None = runbook.draft_content
        declared = draft_parameters(runbook, content)
        version_id = None
    else:
        version = runbook.published_version
        if version is None:
            raise NotPublished(f"Runbook {runbook.name!r} has no published version; "
                               "publish it first.")
        content, declared, version_id = None, version.parameters, version.id
    values = validate(declared, parameters)
    group = worker_group or runbook.worker_group or "default"
    if not GROUP_RE.match(group):
        raise ValidationFailed(f"Invalid worker group {group!r}.",
                               {"worker_group": ["Invalid worker group."]})
    job = Job(
        runbook_id=runbook.id, runbook_version_id=version_id, is_test=test,
        test_content=content, status=JobStatus.NEW.value, parameters=values,
        worker_group=group, started_by=started_by, parent_job_id=parent_job_id,
    )
    session.add(job)
    session.flush()
    job_id = str(job.id)
    send = enqueue or _default_enqueue
    on_commit(session, lambda: send(job_id, group))
    return job


def transition(session: Session | Connection, job_id: uuid.UUID, target: JobStatus, *,
               sources: frozenset[JobStatus] | None = None, **fields: Any) -> bool:
    """Move a job to `target` with one conditional UPDATE; False if its status forbids it.

    `sources` narrows the legal predecessors (e.g. a claim only from `New`). The caller
    commits. Two actors racing for the same job cannot both win: the UPDATE matches once.
    A Core UPDATE on the table: this runs several times for every job.
    """
    allowed = allowed_sources(target)
    if sources is not None:
        allowed = allowed & sources
    now = utcnow()
    values: dict[str, Any] = {"status": target.value, "modified_at": now, **fields}
    if target in FINAL_STATUSES or target == JobStatus.SUSPENDED:
        values.setdefault("end_time", now)
    if target == JobStatus.RUNNING:
        values.setdefault("start_time", now)
    table = Job.__table__
    result = session.execute(
        update(table)
        .where(table.c.id == job_id, table.c.status.in_([s.value for s in allowed]))
        .values(**values)
    )
    return result.rowcount == 1


def require_transition(session: Session, job_id: uuid.UUID, target: JobStatus,
                       **fields: Any) -> None:
    """Like `transition`, but a refusal is IllegalTransition naming the current status."""
    if not transition(session, job_id, target, **fields):
        current = session.scalar(select(Job.status).where(Job.id == job_id))
        if current is None:
            raise JobNotFound(f"Job {job_id} not found.")
        raise IllegalTransition(job_id, current, target.value)
