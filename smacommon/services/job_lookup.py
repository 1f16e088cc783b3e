"""Finding a job by its id, or by the short id the portal and the CLI show; naming who
started it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from smacommon.errors import AmbiguousJobId, JobNotFound
from smacommon.models import Job, Schedule, Webhook
from smacommon.services import access

MIN_PREFIX = 8  # hex digits: what the portal shows of an id
_HEX = frozenset("0123456789abcdef")
_CANDIDATES = 5


def get_job(session: Session, job_id: Any) -> Job:
    """A job by id, or by a unique prefix of 8 or more hex digits of its id (what the portal
    shows); JobNotFound for no match or a malformed id, AmbiguousJobId naming the candidates."""
    if isinstance(job_id, uuid.UUID):
        key = job_id
    else:
        digits = str(job_id).strip().rstrip("\u2026.").replace("-", "").lower()
        if not (MIN_PREFIX <= len(digits) <= 32 and all(c in _HEX for c in digits)):
            raise JobNotFound(f"Job {job_id!r} not found: give its id, or the first "
                              f"{MIN_PREFIX} or more hex digits of it.")
        if len(digits) < 32:
            return _job_by_prefix(session, str(job_id), digits)
        key = uuid.UUID(digits)
    job = session.get(Job, key)
    if job is None:
        raise JobNotFound(f"Job {job_id} not found.")
    return _in_scope(session, job, job_id)


def _in_scope(session: Session, job: Job, given: Any) -> Job:
    """The job, unless its runbook is outside the request's role-binding scope: then the
    same "not found" as for no job at all."""
    if not access.covers_id(session, job.runbook_id):
        raise JobNotFound(f"Job {given} not found.")
    return job


def _job_by_prefix(session: Session, given: str, digits: str) -> Job:
    # a range on the primary key (an index scan on PostgreSQL's uuid and on SQLite's
    # CHAR(32) hex alike: both order as the hex digits do)
    low = uuid.UUID(digits.ljust(32, "0"))
    high = uuid.UUID(digits.ljust(32, "f"))
    # outside a role binding's scope a job is not there, not even as a candidate
    stmt = access.scoped(session, select(Job).where(Job.id >= low, Job.id <= high), Job.runbook_id)
    jobs = list(session.scalars(stmt.order_by(Job.id).limit(_CANDIDATES + 1)))
    if not jobs:
        raise JobNotFound(f"No job id starts with {given!r}.")
    if len(jobs) > 1:
        shown = ", ".join(str(j.id) for j in jobs[:_CANDIDATES])
        more = " and more" if len(jobs) > _CANDIDATES else ""
        raise AmbiguousJobId(f"Several jobs' ids start with {given!r}: {shown}{more}; "
                             "give more of the id.",
                             errors={"candidates": [str(j.id) for j in jobs[:_CANDIDATES]]})
    return jobs[0]


_STARTERS = {"schedule": Schedule, "webhook": Webhook}


def name_starters(session: Session, jobs: Iterable[Job]) -> None:
    """Set each job's `started_by_name`: its started_by with a schedule's or webhook's name
    in place of its id (the id stays when that schedule or webhook is deleted)."""
    jobs = list(jobs)
    names = starter_names(session, (job.started_by for job in jobs))
    for job in jobs:
        job.started_by_name = names[job.started_by] if job.started_by else job.started_by


def starter_names(session: Session, started_bys: Iterable[str | None]) -> dict[str, str]:
    """Each started_by's name: a schedule's or webhook's name in place of its id, else the
    started_by itself; one query per kind."""
    wanted: dict[str, set[uuid.UUID]] = {}
    values = {value for value in started_bys if value}
    for value in values:
        kind, key = _starter(value)
        if key is not None:
            wanted.setdefault(kind, set()).add(key)
    names: dict[tuple[str, uuid.UUID], str] = {}
    for kind, keys in wanted.items():
        model = _STARTERS[kind]
        for key, name in session.execute(select(model.id, model.name)
                                          .where(model.id.in_(keys))):
            names[kind, key] = name
    named = {}
    for value in values:
        kind, key = _starter(value)
        name = names.get((kind, key)) if key is not None else None
        named[value] = f"{kind}:{name}" if name else value
    return named


def _starter(started_by: str | None) -> tuple[str, uuid.UUID | None]:
    kind, _, rest = (started_by or "").partition(":")
    if kind not in _STARTERS:
        return kind, None
    try:
        return kind, uuid.UUID(rest)
    except ValueError:
        return kind, None
