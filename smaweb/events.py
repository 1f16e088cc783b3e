"""Server-sent events of a job: its records as they are written, then its final status.

    GET /api/v1/jobs/{id}/events     (Last-Event-ID or ?after_seq= resumes after a seq)

Each status the job passes through is an event `state`; each record is an event `record`
(with the `attempt` that wrote it; `?attempt=` keeps one attempt's) whose id is its seq, so a
client that lost the connection
asks again with Last-Event-ID and misses nothing. Records are read from the database; the
worker's announcement on Redis (one per batch) only wakes the reader, and without Redis the
reader polls every second. The stream ends with an event `status` once the job is in a final
status (or Suspended), or after `timeout` seconds (default 300), when a client reconnects.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import redis
from sqlalchemy import select

from smacommon import strictjson
from smacommon.db import reading
from smacommon.models import Job, JobStream
from smacommon.states import FINAL_STATUSES, JobStatus
from smacommon.streams import stream_channel

log = logging.getLogger(__name__)
ENDS = {s.value for s in FINAL_STATUSES} | {JobStatus.SUSPENDED.value}
KEEPALIVE_SECONDS = 15.0
BATCH = 1000


def _event(name: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {strictjson.dumps(data, default=str)}\n\n"


class _Wakeup:
    """Waits for a job's announcements on Redis; sleeps a poll interval without it."""

    def __init__(self, redis_url: str, job_id: uuid.UUID) -> None:
        self.pubsub = None
        try:
            client = redis.Redis.from_url(redis_url, socket_timeout=5)
            self.pubsub = client.pubsub(ignore_subscribe_messages=True)
            self.pubsub.subscribe(stream_channel(str(job_id)))
        except (redis.RedisError, OSError, ValueError):
            log.warning("live output without Redis: polling job %s", job_id)
            self.pubsub = None

    def wait(self, seconds: float) -> None:
        if self.pubsub is None:
            time.sleep(seconds)
            return
        try:
            self.pubsub.get_message(timeout=seconds)
        except (redis.RedisError, OSError):
            self.pubsub = None
            time.sleep(seconds)

    def close(self) -> None:
        if self.pubsub is not None:
            try:
                self.pubsub.close()
            except (redis.RedisError, OSError):
                pass


def job_events(factory, redis_url: str, job_id: uuid.UUID, after_seq: int,
               timeout: float, attempt: int | None = None) -> Iterator[str]:
    """The event stream (a generator the response streams); with `attempt`, only that
    attempt's records."""
    wake = _Wakeup(redis_url, job_id)
    deadline = time.monotonic() + timeout
    last_sent = time.monotonic()
    yield "retry: 1000\n\n"
    shown_status = None
    only = [JobStream.attempt == attempt] if attempt else []
    try:
        while True:
            with factory() as session:
                reading(session)
                status = session.execute(select(Job.status, Job.status_reason, Job.exit_code,
                                                Job.exception).where(Job.id == job_id)).first()
                rows = session.execute(
                    select(JobStream.seq, JobStream.attempt, JobStream.stream, JobStream.time,
                           JobStream.text, JobStream.value)
                    .where(JobStream.job_id == job_id, JobStream.seq > after_seq, *only)
                    .order_by(JobStream.seq).limit(BATCH)).all()
            if status is None:
                return  # purged meanwhile
            if status.status != shown_status and status.status not in ENDS:
                shown_status = status.status  # a page shows the status as it moves
                yield _event("state", {"status": status.status,
                                       "status_reason": status.status_reason})
            for row in rows:
                yield _event("record", {"seq": row.seq, "attempt": row.attempt,
                                        "stream": row.stream,
                                        "time": row.time.isoformat(), "text": row.text,
                                        "value": row.value}, row.seq)
            if rows:
                after_seq = rows[-1].seq
                last_sent = time.monotonic()
                if len(rows) == BATCH:
                    continue  # more are waiting: no sleep
            if status.status in ENDS:  # read after the final records were written
                yield _event("status", {"status": status.status,
                                        "status_reason": status.status_reason,
                                        "exit_code": status.exit_code,
                                        "exception": status.exception})
                return
            now = time.monotonic()
            if now >= deadline:
                return
            if now - last_sent >= KEEPALIVE_SECONDS:
                yield ": keepalive\n\n"
                last_sent = now
            wake.wait(min(1.0, max(0.0, deadline - now)))
    finally:
        wake.close()
