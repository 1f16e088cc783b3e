"""Job retention: finished jobs older than the retention period go, with their records.

Deletes in small batches, each its own short transaction, so the live job table is never
locked for long and a purge of millions of records does not hold one huge transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select

from smacommon.db import utcnow
from smacommon.models import Job, JobAttempt, JobStatusEvent, JobStream
from smacommon.services.audit import Actor, record_alone
from smacommon.states import FINAL_STATUSES

JOB_BATCH = 200
RECORD_BATCH = 20000


def purge_jobs(engine: Engine, older_than_days: int, actor: Actor) -> dict:
    """Delete finished jobs that ended more than `older_than_days` ago; return the counts
    (audited as one event once done: the purge runs in many short transactions)."""
    cutoff: datetime = utcnow() - timedelta(days=older_than_days)
    jobs_deleted = records_deleted = 0
    finished = [s.value for s in FINAL_STATUSES]
    while True:
        with engine.begin() as conn:
            ids = list(conn.execute(
                select(Job.id).where(Job.status.in_(finished), Job.end_time < cutoff)
                .order_by(Job.end_time).limit(JOB_BATCH)).scalars())
        if not ids:
            break
        for job_id in ids:  # a job with a million records goes in slices too
            while True:
                with engine.begin() as conn:
                    seqs = select(JobStream.seq).where(JobStream.job_id == job_id) \
                        .order_by(JobStream.seq).limit(RECORD_BATCH)
                    result = conn.execute(delete(JobStream).where(
                        JobStream.job_id == job_id, JobStream.seq.in_(seqs.scalar_subquery())))
                records_deleted += result.rowcount
                if result.rowcount < RECORD_BATCH:
                    break
        with engine.begin() as conn:
            conn.execute(delete(JobStatusEvent).where(JobStatusEvent.job_id.in_(ids)))
            conn.execute(delete(JobAttempt).where(JobAttempt.job_id.in_(ids)))
            conn.execute(Job.__table__.update().where(Job.parent_job_id.in_(ids))
                         .values(parent_job_id=None))
            jobs_deleted += conn.execute(delete(Job).where(Job.id.in_(ids))).rowcount
    record_alone(engine, actor, "jobs.purge", "/api/v1/jobs",
                 older_than_days=older_than_days, jobs_deleted=jobs_deleted,
                 records_deleted=records_deleted)
    return {"jobs_deleted": jobs_deleted, "records_deleted": records_deleted, "cutoff": cutoff}
