"""Celery tasks of the runbook workers."""

from __future__ import annotations

import logging

import redis

from smacommon.metrics import process_sink
from smacommon.queue import enqueue_job
from smaworker import shutdown
from smaworker.celery_app import app, settings, worker_name
from smaworker.runner import JobRunner

log = logging.getLogger(__name__)
_redis: redis.Redis | None = None


def _client() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=5)
    return _redis


def _publish(channel: str, last_seq: int) -> None:
    _client().publish(channel, last_seq)


@app.task(name="sma.run_job", ignore_result=True)
def run_job(job_id: str) -> str:
    """Claim and run one job; a message for a job already claimed runs nothing.

    Returns the job's status when this run ended it ("Completed", "Failed", "Stopped",
    "Suspended"), else why it did not: no result backend stores it (ignore_result), but the
    task-succeeded event carries it, so Flower's task list tells how each job ended."""
    if shutdown.shutting_down():  # handed to this process as the worker was told to stop
        try:
            enqueue_job(job_id, settings.worker_group)  # for the group's next worker
            log.info("job %s: not started, the worker is shutting down; sent back to the "
                     "queue", job_id)
        except Exception as exc:  # noqa: BLE001 - the job is in the database: the reaper
            log.warning("job %s: not started, the worker is shutting down; the reaper "
                        "sends it again (%s)", job_id, str(exc).splitlines()[0])
        return "not started: the worker is shutting down"
    return JobRunner(job_id, settings, worker_name(), publish=_publish, enqueue=enqueue_job,
                     metrics=process_sink()).run()
