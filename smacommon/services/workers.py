"""Workers as the API shows them: state from the heartbeat, running jobs from the jobs table."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from smacommon.db import utcnow
from smacommon.models import Job, Worker
from smacommon.states import ACTIVE_STATUSES


def list_workers(session: Session, heartbeat_seconds: float, group: str | None = None,
                 state: str | None = None) -> list[Worker]:
    """Registered workers with `state` (online or lost) and `running_jobs` attached."""
    stmt = select(Worker).order_by(Worker.worker_group, Worker.name)
    if group:
        stmt = stmt.where(Worker.worker_group == group)
    workers = list(session.scalars(stmt))
    fresh = utcnow() - timedelta(seconds=heartbeat_seconds * 3)
    running: dict[str, list] = {}
    rows = session.execute(select(Job.worker, Job.id).where(
        Job.status.in_([s.value for s in ACTIVE_STATUSES]), Job.worker.is_not(None)))
    for name, job_id in rows:
        running.setdefault(name, []).append(job_id)
    for worker in workers:
        worker.state = "online" if worker.heartbeat_at >= fresh else "lost"
        worker.running_jobs = running.get(worker.name, [])
    return [w for w in workers if state is None or w.state == state]
