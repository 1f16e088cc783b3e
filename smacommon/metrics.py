"""Prometheus metrics of the whole service, whatever process or host did the work.

Every process that moves jobs (workers, beat's reaper, the web service) adds to counters and
histogram buckets in one Redis hash. A process adds up what its jobs record in memory and one
background thread sends the sums about once a second (SMA_METRICS_FLUSH_SECONDS) in one
pipelined round trip, and once more when the process ends cleanly, so one scrape of the web
service's /metrics sees every worker on every host, a busy worker costs Redis one round trip
a second rather than a few per job, and a clean stop loses nothing. Gauges (jobs by status,
workers, slots, queue depth) are read at scrape time from the database and Redis. API
request latency is measured in each web process (with PROMETHEUS_MULTIPROC_DIR set, across
gunicorn's processes). docs/metrics.md lists the series.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
from collections.abc import Sequence

from smacommon.limits import MAX_TIMEOUT_SECONDS

log = logging.getLogger(__name__)

KEY = "sma:metrics"
# up to the longest timeout a runbook may set; a job with no timeout may run longer (+Inf)
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400,
                    MAX_TIMEOUT_SECONDS, float("inf"))
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                   float("inf"))
SEP = "\x1f"  # between the parts of a field name (never in a runbook name)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def bucket(buckets: Sequence[float], value: float) -> str:
    """The one bucket (its `le`) of `buckets` that `value` falls in: an observation writes
    one field, not one per bound above it; the scrape adds them up (`cumulate`)."""
    return _le(buckets[bisect.bisect_left(buckets, value)])


def cumulate(buckets: Sequence[float], counts: dict[str, float]) -> list[tuple[str, float]]:
    """Prometheus's cumulative buckets from the per-bucket counts `bucket` keys."""
    total, out = 0.0, []
    for bound in buckets:
        total += counts.get(_le(bound), 0.0)
        out.append((_le(bound), total))
    return out


class RedisMetrics:
    """What a process records. Counts are added up in memory and sent by a background
    thread every `interval` seconds (merged, one pipelined round trip), so a job never waits
    for Redis, least of all inside a database transaction; `flush` sends what is pending at
    once (at a clean exit). A failure loses counts, never a job."""

    def __init__(self, client, interval: float = 1.0) -> None:
        self.client = client
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        # a forked child has its own counts to send, and no lock a parent's thread holds
        self._lock = threading.Lock()
        self._pending = {}
        self._pid = 0

    def _apply(self, counts: dict[str, float]) -> None:
        with self._lock:
            if self._pid != os.getpid():  # (re)start after a fork: the parent's counts
                self._pending = {}       # are the parent's to send
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._send_forever, daemon=True,
                                                name="sma-metrics")
                self._thread.start()
            pending = self._pending
            for field, amount in counts.items():
                pending[field] = pending.get(field, 0) + amount

    def _send_forever(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            time.sleep(self.interval)
            self.flush()

    def flush(self) -> None:
        """Send what this process has counted and not sent yet (one round trip)."""
        with self._lock:
            if self._pid != os.getpid() or not self._pending:
                return
            merged, self._pending = self._pending, {}
        try:
            pipe = self.client.pipeline(transaction=False)
            for field, amount in merged.items():
                if isinstance(amount, float):  # a sum: HINCRBY refuses it once a
                    pipe.hincrbyfloat(KEY, field, amount)  # fraction is in the field
                else:
                    pipe.hincrby(KEY, field, int(amount))
            pipe.execute()
        except Exception:  # noqa: BLE001
            log.debug("metrics not recorded", exc_info=True)

    def job_started(self, runbook: str, latency_seconds: float) -> None:
        """A job's process started for the first time, `latency_seconds` after its start
        was asked for."""
        latency = max(0.0, float(latency_seconds))
        self._apply({f"jobs_started{SEP}{runbook}": 1,
                     "latency_sum": latency,
                     f"latency_le{SEP}{bucket(LATENCY_BUCKETS, latency)}": 1})

    def job_ended(self, runbook: str, status: str) -> None:
        """A job came to rest in `status` (smacommon.states.RESTING_STATUSES)."""
        self._apply({f"jobs_finished{SEP}{runbook}{SEP}{status}": 1})

    def run_ended(self, runbook: str, duration_seconds: float | None, lines: int,
                  nbytes: int) -> None:
        """A run of the job's process ended: how long it ran, what it wrote."""
        counts: dict[str, float] = {}
        if lines:
            counts["output_lines"] = lines
        if nbytes:
            counts["output_bytes"] = nbytes
        if duration_seconds is not None:
            duration = max(0.0, float(duration_seconds))
            counts[f"job_duration_sum{SEP}{runbook}"] = duration
            counts[f"job_duration_le{SEP}{runbook}{SEP}{bucket(DURATION_BUCKETS, duration)}"] = 1
        if counts:
            self._apply(counts)


_sink: RedisMetrics | None = None
_sink_lock = threading.Lock()


def process_sink() -> RedisMetrics | None:
    """This process's sink, on SMA_REDIS_URL (None without a Redis): its one thread sends
    what every job of the process records, about once a second."""
    global _sink
    with _sink_lock:
        if _sink is None:
            from smacommon.settings import get_settings

            url = get_settings().effective_redis_url
            if not url:
                return None
            import redis

            _sink = RedisMetrics(redis.Redis.from_url(url, socket_timeout=5,
                                                      socket_connect_timeout=5),
                                 interval=get_settings().metrics_flush_seconds)
            atexit.register(_sink.flush)  # a clean exit sends what is pending
        return _sink


def flush() -> None:
    """Send this process's pending counts now (a Celery pool process ends with os._exit,
    past atexit: the worker flushes from its worker_process_shutdown signal)."""
    if _sink is not None:
        _sink.flush()


def job_ended(runbook: str | None, status: str) -> None:
    """Count a job come to rest (called once its move has committed; never raises)."""
    try:
        sink = process_sink()
        if sink is not None and runbook:
            sink.job_ended(runbook, status)
    except Exception:  # noqa: BLE001 - a count is never worth a failed request or job
        log.debug("metrics: job end not counted", exc_info=True)


def read_counters(client) -> dict[str, float]:
    raw = client.hgetall(KEY)
    return {k.decode() if isinstance(k, bytes) else k: float(v) for k, v in raw.items()}
