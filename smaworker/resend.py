"""Sending again, at once, the jobs whose message the broker lost.

A Redis restarted without persistence has lost every queued message, and a consumer that
lost its connection could not put back a message it held. The database still has the jobs
(New or Resuming): a worker that (re)connects sends again those of its group that have no
message in its queue, so they need not wait SMA_REQUEUE_NEW_AFTER_SECONDS for the reaper.
A job whose message is still queued (a persistent Redis, a connection that only blinked)
is not sent twice, and one worker of a group does it at a time; a duplicate that slips
through (a message being consumed right then) is dropped by the claim.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable

import redis
from sqlalchemy import Engine, select

from smacommon.db import read_connection
from smacommon.models import Job
from smacommon.queue import RUN_JOB_TASK
from smacommon.states import JobStatus
from smacommon.workergroups import queue_name

log = logging.getLogger(__name__)
_jobs = Job.__table__
_WAITING = [JobStatus.NEW.value, JobStatus.RESUMING.value]
BATCH = 1000  # jobs sent again at most per connection (the reaper takes any others)
_SCAN = 1000  # messages read per LRANGE
LOCK_SECONDS = 30.0


def resend_waiting(engine: Engine, redis_url: str, group: str,
                   enqueue: Callable[[str, str], None]) -> int:
    """Send again the waiting jobs of `group` with no message in its queue; how many."""
    queue = queue_name(group)
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        # the workers of a group reconnect together: one looks, the others find it done
        lock = client.lock(f"sma:resend:{queue}", timeout=LOCK_SECONDS, blocking=False)
        if not lock.acquire():
            return 0
        try:
            # the queue before the jobs: a message taken in between is one whose job is
            # being claimed, not one to send again
            queued = queued_job_ids(client, queue)
            with read_connection(engine) as conn:
                waiting = [str(job_id) for job_id in conn.execute(
                    select(_jobs.c.id).where(_jobs.c.status.in_(_WAITING),
                                             _jobs.c.worker_group == group)
                    .order_by(_jobs.c.created_at).limit(BATCH)).scalars()]
            missing = [job_id for job_id in waiting if job_id not in queued]
            for job_id in missing:
                enqueue(job_id, group)
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:  # expired meanwhile: nothing to release
                pass
    finally:
        client.close()
    return len(missing)


def queued_job_ids(client: redis.Redis, queue: str) -> set[str]:
    """The ids of the jobs whose run message waits in `queue` (kombu's list of it)."""
    found: set[str] = set()
    start = 0
    while True:
        items = client.lrange(queue, start, start + _SCAN - 1)
        found.update(filter(None, map(_job_id, items)))
        if len(items) < _SCAN:
            return found
        start += _SCAN


def _job_id(item: bytes) -> str | None:
    """The job id a kombu message of `sma.run_job` carries, else None."""
    try:
        payload = json.loads(item)
        if payload["headers"].get("task") != RUN_JOB_TASK:
            return None
        body = payload["body"]
        if payload["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]  # Celery's message protocol 2: [args, kwargs, embed]
        return str(args[0])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
