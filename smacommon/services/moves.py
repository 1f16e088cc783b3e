"""The statements of a job's move (smacommon.services.jobs.transition), built once and
executed with parameters: a move runs several times for every job, and building a
statement in SQLAlchemy costs more than running it (the compiled form is cached per
statement, so a statement built once is also compiled once)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, update

from smacommon.models import Job, JobAttempt, JobStatusEvent
from smacommon.prepared import in_values, insert_all
from smacommon.states import JobStatus

_jobs = Job.__table__
_events = JobStatusEvent.__table__
_attempts = JobAttempt.__table__

ADD_EVENT = insert_all(_events, ("job_id", "status", "time", "actor", "reason", "reason_code"))
CLOSE_ATTEMPT = (update(_attempts)
                 .where(_attempts.c.job_id == bindparam("a_job_id"),
                        _attempts.c.ended_at.is_(None))
                 .values(ended_at=bindparam("a_ended_at"), status=bindparam("a_status"),
                         end_reason=bindparam("a_end_reason"))
                 .returning(_attempts.c.started_at))
_moves: dict[tuple, Any] = {}


def move_statement(allowed: frozenset[JobStatus], columns: tuple[str, ...],
                   expected: tuple[tuple[str, bool], ...]) -> Any:
    """The conditional UPDATE of a move: from `allowed`, setting `columns` (parameters
    v_<column>), where the row has the id w_id and each `expected` column its parameter
    w_<column> (or NULL, when that is what is expected). One per shape, per process: the
    callers use a few dozen."""
    key = (allowed, columns, expected)
    stmt = _moves.get(key)
    if stmt is None:
        stmt = (update(_jobs)
                .where(_jobs.c.id == bindparam("w_id"),
                       in_values(_jobs.c.status, sorted(s.value for s in allowed)))
                .values({column: bindparam(f"v_{column}", type_=_jobs.c[column].type)
                         for column in columns})
                .returning(_jobs.c.runbook_id))
        for column, is_null in expected:
            stmt = stmt.where(_jobs.c[column].is_(None) if is_null
                              else _jobs.c[column] == bindparam(f"w_{column}"))
        if len(_moves) > 1000:  # never, with sma's callers; bounded all the same
            _moves.clear()
        _moves[key] = stmt
    return stmt
