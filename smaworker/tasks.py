"""Celery tasks of the runbook workers."""

from __future__ import annotations

import logging

import redis

from smacommon.metrics import RedisMetrics
from smacommon.queue import enqueue_job
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
    JobRunner(job_id, settings, worker_name(), publish=_publish, enqueue=enqueue_job,
              metrics=_metrics_sink()).run()
