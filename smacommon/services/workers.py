"""Workers as the API shows them: state from the heartbeat, running jobs from the jobs table.

The one rule for "online": a heartbeat fresher than LOST_AFTER_HEARTBEATS intervals."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from smacommon.db import utcnow
from smacommon.models import Job, Worker
from smacommon.settings import LOST_AFTER_HEARTBEATS
from smacommon.states import ACTIVE_STATUSES


def online_since(heartbeat_seconds: float) -> datetime:
    """The oldest heartbeat of a worker still online; an older one's worker is lost."""
    return utcnow() - timedelta(seconds=LOST_AFTER_HEARTBEATS * heartbeat_seconds)


def is_online(heartbeat_seconds: float) -> ColumnElement[bool]:
    """The SQL condition of `online_since`, for queries on the workers table."""
    return Worker.heartbeat_at >= online_since(heartbeat_seconds)


def list_workers(session: Session, heartbeat_seconds: float, group: str | None = None,
                 state: str | None = None) -> list[Worker]:
    """Registered workers with `state` (online or lost) and `running_jobs` attached."""
    stmt = select(Worker).order_by(Worker.worker_group, Worker.name)
    if group:
        stmt = stmt.where(Worker.worker_group == group)
    workers = list(session.scalars(stmt))
    fresh = online_since(heartbeat_seconds)
    running: dict[str, list] = {}
    rows = session.execute(select(Job.worker, Job.id).where(
        Job.status.in_([s.value for s in ACTIVE_STATUSES]), Job.worker.is_not(None)))
    for name, job_id in rows:
        running.setdefault(name, []).append(job_id)
    for worker in workers:
        worker.state = "online" if worker.heartbeat_at >= fresh else "lost"
        worker.running_jobs = running.get(worker.name, [])
    return [w for w in workers if state is None or w.state == state]
