"""What a request limited by role bindings may reach: the runbooks its scope covers, and
through them their jobs, webhooks and schedules.

The web service binds a Scope to the request's session (`limit_to`) when the caller's
global role is below what the request needs but a role binding gives enough over some
runbooks. `get_runbook` and `get_job` then answer "not found" for anything outside it (a 404,
so names do not leak), and the lists add `condition(...)` to their SQL, so paging by cursor
stays exact. A session with no scope bound (global roles, workers, beat) sees everything.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from smacommon.errors import Forbidden
from smacommon.models import JobSchedule, Runbook, Schedule

_KEY = "sma_scope"
_IDS = "sma_scope_ids"


@dataclass(frozen=True)
class Scope:
    """Runbooks reachable: those with any of `tags`, and those whose id is in `runbook_ids`."""

    tags: frozenset[str] = frozenset()
    runbook_ids: frozenset[uuid.UUID] = frozenset()

    def covers(self, runbook: Runbook) -> bool:
        return runbook.id in self.runbook_ids or bool(self.tags & set(runbook.tags or ()))


def limit_to(session: Session, scope: Scope) -> Session:
    """Limit what `session` finds to `scope` (for the rest of the request)."""
    session.info[_KEY] = scope
    session.info.pop(_IDS, None)
    return session


def scope_of(session: Session) -> Scope | None:
    """The scope bound to `session`; None when it reaches everything."""
    return session.info.get(_KEY)


def covers(session: Session, runbook: Runbook) -> bool:
    scope = scope_of(session)
    return scope is None or scope.covers(runbook)


def runbook_ids(session: Session) -> frozenset[uuid.UUID] | None:
    """The ids of the runbooks in scope (None: all), read once a request: tags are a JSON
    list, matched here the same way on SQLite and PostgreSQL."""
    scope = scope_of(session)
    if scope is None:
        return None
    if _IDS not in session.info:
        rows = session.execute(select(Runbook.id, Runbook.tags)).all()
        session.info[_IDS] = frozenset(
            rid for rid, tags in rows
            if rid in scope.runbook_ids or scope.tags & set(tags or ()))
    return session.info[_IDS]


def covers_id(session: Session, runbook_id: uuid.UUID) -> bool:
    ids = runbook_ids(session)
    return ids is None or runbook_id in ids


def condition(session: Session, column) -> ColumnElement[bool] | None:
    """`column` (a runbook id) in scope, for a list's WHERE; None when all are."""
    ids = runbook_ids(session)
    return None if ids is None else column.in_(ids)


def scoped(session: Session, stmt: Select, column) -> Select:
    """`stmt` keeping the rows whose runbook (`column`) is in scope."""
    where = condition(session, column)
    return stmt if where is None else stmt.where(where)


def schedule_condition(session: Session) -> ColumnElement[bool] | None:
    """Schedules in scope: linked to a runbook in it, or to none yet (a scoped author's new
    schedule, before its first link); None when all are."""
    ids = runbook_ids(session)
    if ids is None:
        return None
    linked = select(JobSchedule.schedule_id)
    return or_(Schedule.id.not_in(linked),
               Schedule.id.in_(linked.where(JobSchedule.runbook_id.in_(ids))))


def covers_schedule(session: Session, schedule: Schedule) -> bool:
    ids = runbook_ids(session)
    return ids is None or not schedule.links or any(
        link.runbook_id in ids for link in schedule.links)


def check_whole_schedule(session: Session, schedule: Schedule) -> None:
    """Forbidden unless every runbook linked to `schedule` is in scope (a change to it
    changes when each of them runs)."""
    ids = runbook_ids(session)
    if ids is not None and any(link.runbook_id not in ids for link in schedule.links):
        raise Forbidden(f"Schedule {schedule.name!r} also starts runbooks outside your role "
                        "bindings: ask someone whose role covers them to change it.")


def check_new_runbook(session: Session, tags: list[str] | None) -> None:
    """Forbidden unless a new runbook with `tags` would be in scope."""
    scope = scope_of(session)
    if scope is not None and not scope.tags & set(tags or ()):
        bound = ", ".join(sorted(scope.tags)) or "none"
        raise Forbidden("Your role bindings let you create only runbooks with one of the tags "
                        f"they cover ({bound}): add one to `tags`.",
                        {"tags": [f"Needs one of: {bound}."]})
