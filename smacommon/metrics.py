"""Prometheus metrics of the whole service, whatever process or host did the work.

Workers add to counters and histogram buckets in one Redis hash (a few HINCRBY per job, in
one round trip), so one scrape of the web service's /metrics sees every worker on every
host. Gauges (workers online, jobs waiting, queue depth) are read at scrape time from the
database and Redis. API request latency is measured in each web process (with
PROMETHEUS_MULTIPROC_DIR set, across gunicorn's processes).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterable

log = logging.getLogger(__name__)

KEY = "sma:metrics"
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, float("inf"))
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                   float("inf"))
SEP = "\x1f"  # between the parts of a field name (never in a runbook name)


def _bucket_fields(name: str, value: float, buckets: Iterable[float]) -> list[str]:
    return [f"{name}_bucket{SEP}{_le(b)}" for b in buckets if value <= b]


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class RedisMetrics:
    """What a worker records. A background thread sends the counts (merged, one pipelined
    round trip at a time), so a job never waits for Redis, least of all inside a database
    transaction; a failure loses counts, never a job."""

    def __init__(self, client) -> None:
        self.client = client
        self._queue: queue.SimpleQueue[dict[str, float]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _apply(self, counts: dict[str, float]) -> None:
        if self._thread is None or self._pid != os.getpid():  # (re)start after a fork
            self._queue = queue.SimpleQueue()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._send_forever, daemon=True,
                                            name="sma-metrics")
            self._thread.start()
        self._queue.put(counts)

    def _send_forever(self) -> None:
        while True:
            merged: dict[str, float] = dict(self._queue.get())
            while True:  # everything else already waiting goes in the same round trip
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                for field, amount in more.items():
                    merged[field] = merged.get(field, 0) + amount
            try:
                pipe = self.client.pipeline(transaction=False)
                for field, amount in merged.items():
                    if isinstance(amount, float) and not amount.is_integer():
                        pipe.hincrbyfloat(KEY, field, amount)
                    else:
                        pipe.hincrby(KEY, field, int(amount))
                pipe.execute()
            except Exception:  # noqa: BLE001
                log.debug("metrics not recorded", exc_info=True)

    def job_started(self, runbook: str, latency_seconds: float) -> None:
        counts: dict[str, float] = {f"jobs_started{SEP}{runbook}": 1,
                                    "start_latency_sum": float(latency_seconds),
                                    "start_latency_count": 1}
        for field in _bucket_fields("start_latency", latency_seconds, LATENCY_BUCKETS):
            counts[field] = 1
        self._apply(counts)

    def job_finished(self, runbook: str, status: str, duration_seconds: float | None,
                     lines: int) -> None:
        counts: dict[str, float] = {f"jobs_finished{SEP}{runbook}{SEP}{status}": 1}
        if lines:
            counts["output_lines"] = lines
        if duration_seconds is not None:
            counts["job_duration_sum"] = float(duration_seconds)
            counts["job_duration_count"] = 1
            for field in _bucket_fields("job_duration", duration_seconds, DURATION_BUCKETS):
                counts[field] = 1
        self._apply(counts)


def read_counters(client) -> dict[str, float]:
    raw = client.hgetall(KEY)
    return {k.decode() if isinstance(k, bytes) else k: float(v) for k, v in raw.items()}
