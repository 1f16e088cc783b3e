"""Each runbook's last run, for the runbook list: its latest job's status and time.

The latest job of each runbook on a page comes from one grouped query (the index on
jobs (runbook_id, created_at) answers it), not one query a runbook. The filter by last
status is a condition on the runbooks' own query, so the list pages on as before. Test jobs
(a draft's runs) are not runs of the runbook here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.orm import Session

from smacommon.models import Job, Runbook

NEVER = "never"  # the filter's value for runbooks that have no job yet


@dataclass(frozen=True)
class LastRun:
    """A runbook's latest job."""

    job_id: uuid.UUID
    status: str
    created_at: datetime


def last_runs(session: Session, runbook_ids: list[uuid.UUID]) -> dict[uuid.UUID, LastRun]:
    """The latest job of each of these runbooks (those with none are absent)."""
    if not runbook_ids:
        return {}
    latest = (select(Job.runbook_id, func.max(Job.created_at).label("at"))
              .where(Job.runbook_id.in_(runbook_ids), Job.is_test.is_(False))
              .group_by(Job.runbook_id).subquery())
    rows = session.execute(
        select(Job.runbook_id, Job.id, Job.status, Job.created_at)
        .join(latest, and_(Job.runbook_id == latest.c.runbook_id,
                           Job.created_at == latest.c.at))
        .where(Job.is_test.is_(False))
        .order_by(Job.id)).all()  # two jobs of one instant: the same one each time
    return {row.runbook_id: LastRun(row.id, row.status, row.created_at) for row in rows}


def last_status_is(status: str) -> ColumnElement[bool]:
    """Runbooks whose latest job has this status (NEVER: runbooks never run)."""
    if status == NEVER:
        return ~exists().where(Job.runbook_id == Runbook.id, Job.is_test.is_(False))
    latest = (select(Job.status).where(Job.runbook_id == Runbook.id, Job.is_test.is_(False))
              .order_by(Job.created_at.desc(), Job.id.desc()).limit(1)
              .correlate(Runbook).scalar_subquery())
    return latest == status
