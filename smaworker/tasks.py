"""Celery tasks of the runbook workers."""

from __future__ import annotations

import logging

import redis

from smacommon.metrics import RedisMetrics
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


_metrics: RedisMetrics | None = None


def _metrics_sink() -> RedisMetrics:
    """One per process: its sending thread serves every job the process runs."""
    global _metrics
    if _metrics is None:
        _metrics = RedisMetrics(_client())
    return _metrics


@app.task(name="sma.run_job", ignore_result=True)
def run_job(job_id: str) -> None:
    """Claim and run one job; a message for a job already claimed runs nothing."""
    if shutdown.shutting_down():  # handed to this process as the worker was told to stop
        try:
            enqueue_job(job_id, settings.worker_group)  # for the group's next worker
            log.info("job %s: not started, the worker is shutting down; sent back to the "
                     "queue", job_id)
        except Exception as exc:  # noqa: BLE001 - the job is in the database: the reaper
            log.warning("job %s: not started, the worker is shutting down; the reaper "
                        "sends it again (%s)", job_id, str(exc).splitlines()[0])
        return
    JobRunner(job_id, settings, worker_name(), publish=_publish, enqueue=enqueue_job,
              metrics=_metrics_sink()).run()
