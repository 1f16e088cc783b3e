"""A page of the jobs list (GET /api/v1/jobs) as the dicts JobSchema dumps, without the
schema and without loading Job objects (smaweb.fastjson): the list is the most read page of
the API, and 50 jobs through the ORM and marshmallow cost several times their SQL."""

from __future__ import annotations

import uuid
from datetime import UTC

from sqlalchemy import DateTime, Row, Select, bindparam, select, type_coerce
from sqlalchemy.orm import Session

from smacommon.db import reading
from smacommon.models import Job, Runbook, RunbookVersion
from smacommon.services.job_lookup import starter_names
from smaweb.pagination import encode_cursor, keyset_statement

_STAMPS = ("created_at", "start_time", "end_time", "modified_at")
# JobSchema's fields read from the row as they are (the rest are named or computed below);
# times are read as the naive UTC the columns store, and written with +00:00 by fastjson
_PLAIN = ("id", "runbook_id", "is_test", "status", "status_reason", "exception",
          "parameters", "worker_group", "worker", "started_by", "parent_job_id", "attempt",
          "exit_code", "cpu_seconds", "peak_memory_mb", "engine_path")
_COLUMNS = (*(getattr(Job, name) for name in _PLAIN), Job.runbook_version_id, Job.arguments,
            Job.requirements,
            *(type_coerce(getattr(Job, name), DateTime()).label(name) for name in _STAMPS))
# one job's, built once (the live hub reads it for a waiter too: smaweb.livefeed)
JOB_ROW = select(*_COLUMNS).where(Job.id == bindparam("job_id"))
# what RequirementsSchema dumps of a job's pinned requirements
_REQUIREMENTS = ("dependencies", "requires_python", "pinned", "python", "key")


def page_statement(stmt: Select, limit: int, cursor: str | None) -> Select:
    """The query of a page of `stmt` (smaweb.queries.jobs_statement) after `cursor`."""
    return keyset_statement(stmt.with_only_columns(*_COLUMNS), Job.created_at, Job.id, limit,
                            cursor)


def job_page(session: Session, stmt: Select, limit: int, cursor: str | None) -> dict:
    """The page of `stmt` (smaweb.queries.jobs_statement) after `cursor`: its jobs, as
    JobSchema would dump them, and the next cursor."""
    rows = session.connection().execute(page_statement(stmt, limit, cursor)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at.replace(tzinfo=UTC), rows[-1].id)
    return {"items": _dicts(session, rows), "next_cursor": next_cursor}


def _dicts(session: Session, rows: list[Row]) -> list[dict]:
    if not rows:
        return []
    names = dict(session.execute(select(Runbook.id, Runbook.name).where(
        Runbook.id.in_({row.runbook_id for row in rows}))).all())
    version_ids = {row.runbook_version_id for row in rows if row.runbook_version_id}
    numbers = dict(session.execute(select(RunbookVersion.id, RunbookVersion.number).where(
        RunbookVersion.id.in_(version_ids))).all()) if version_ids else {}
    starters = starter_names(session, (row.started_by for row in rows))
    return [job_dict(row, names.get(row.runbook_id), numbers.get(row.runbook_version_id),
                     starters.get(row.started_by, row.started_by)) for row in rows]


def job_dict(job: Row | Job, runbook_name: str | None, runbook_version: int | None,
             started_by_name: str) -> dict:
    """A job (a row of `_COLUMNS`, or a Job) as JobSchema dumps it, with the names given."""
    item = {name: getattr(job, name) for name in _PLAIN}
    item["runbook_name"] = runbook_name
    item["runbook_version"] = runbook_version
    item["arguments"] = job.arguments or []
    item["requirements"] = None if job.requirements is None else {
        key: job.requirements[key] for key in _REQUIREMENTS if key in job.requirements}
    item["started_by_name"] = started_by_name
    for name in _STAMPS:
        item[name] = getattr(job, name)
    return item


def read_job_dict(session: Session, job_id: uuid.UUID, runbook_name: str | None,
                  runbook_version: int | None, started_by_name: str) -> dict | None:
    """The job's row read now (Core: no ORM object) as JobSchema dumps it; None if gone. A
    read of its own, after the request's writes committed: on SQLite it starts deferred and
    takes no write lock (a waiting start reads its job once it ended)."""
    row = reading(session).connection().execute(JOB_ROW, {"job_id": job_id}).first()
    return None if row is None else job_dict(row, runbook_name, runbook_version,
                                             started_by_name)

