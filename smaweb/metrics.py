"""GET /metrics in the Prometheus text format (see smacommon.metrics for where numbers come
from, docs/metrics.md for the series). No token: like /health, it is meant for the
monitoring network.

A scrape reads three small things from the database (the runbooks, the workers, the jobs
not yet ended, through the status index) and one hash and a LLEN per group from Redis.
Every gauge has a series, 0 when empty, for each known worker group ("default", the groups
of registered workers, of runbooks and of jobs not yet ended) and status, and every counter
one for each runbook and status it can have, so a series never appears from nothing (which
`rate()` and `increase()` would not count) and an empty group reads 0, not "no data".
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import redis
from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select

from smacommon.db import get_engine, read_connection
from smacommon.metrics import DURATION_BUCKETS, LATENCY_BUCKETS, SEP, cumulate, read_counters
from smacommon.models import Job, Runbook, Worker
from smacommon.services.workers import online_since
from smacommon.states import ACTIVE_STATUSES, FINAL_STATUSES, RESTING_STATUSES, JobStatus
from smacommon.workergroups import is_valid_worker_group, queue_name

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)
REQUESTS = Histogram("sma_api_request_duration_seconds",
                     "API request time by method, endpoint and HTTP status code",
                     ["method", "endpoint", "status"], buckets=LATENCY_BUCKETS[:-1])
_NOT_ENDED = [s.value for s in JobStatus if s not in FINAL_STATUSES]  # in lifecycle order
_RESTING = [s.value for s in JobStatus if s in RESTING_STATUSES]
_ACTIVE = {s.value for s in ACTIVE_STATUSES}
_WAITING = {JobStatus.NEW.value, JobStatus.RESUMING.value}


@dataclass
class _Cluster:
    """What one scrape read of the database."""

    runbooks: list[str] = field(default_factory=list)
    groups: set[str] = field(default_factory=lambda: {"default"})
    online: Counter = field(default_factory=Counter)     # group -> workers online
    capacity: Counter = field(default_factory=Counter)   # group -> their job slots
    busy: Counter = field(default_factory=Counter)       # group -> slots running a job
    jobs: Counter = field(default_factory=Counter)       # (group, status) -> jobs


def _read_cluster(settings) -> _Cluster:
    cluster = _Cluster()
    fresh = online_since(settings.worker_heartbeat_seconds)
    with read_connection(get_engine(settings.effective_database_url)) as conn:
        for name, group in conn.execute(select(Runbook.name, Runbook.worker_group)):
            cluster.runbooks.append(name)
            cluster.groups.add(group or "default")
        online_group: dict[str, str] = {}
        for name, group, concurrency, heartbeat_at in conn.execute(
                select(Worker.name, Worker.worker_group, Worker.concurrency,
                       Worker.heartbeat_at)):
            cluster.groups.add(group)
            if heartbeat_at >= fresh:
                online_group[name] = group
                cluster.online[group] += 1
                cluster.capacity[group] += concurrency or 1
        # through ix_jobs_status_created: only the jobs not yet ended are read
        for group, status, worker, count in conn.execute(
                select(Job.worker_group, Job.status, Job.worker, func.count())
                .where(Job.status.in_(_NOT_ENDED))
                .group_by(Job.worker_group, Job.status, Job.worker)):
            cluster.groups.add(group)
            cluster.jobs[group, status] += count
            if status in _ACTIVE and worker in online_group:
                cluster.busy[online_group[worker]] += count
    return cluster


def _counters(counters: dict[str, float], runbooks: list[str]):
    started = CounterMetricFamily("sma_jobs_started", "Jobs whose process started "
                                  "(first attempts)", labels=["runbook"])
    finished = CounterMetricFamily("sma_jobs_finished", "Jobs come to rest, by the status "
                                   "they came to (a suspended job that is resumed and ends "
                                   "is counted again)", labels=["runbook", "status"])
    starts = {name: 0.0 for name in runbooks}
    ends = {(name, status): 0.0 for name in runbooks for status in _RESTING}
    durations: dict[str, dict[str, float]] = {}  # runbook -> its buckets' counts, and "sum"
    start: dict[str, float] = {}
    for key, value in counters.items():
        parts = key.split(SEP)
        if parts[0] == "jobs_started" and len(parts) == 2:
            starts[parts[1]] = value
        elif parts[0] == "jobs_finished" and len(parts) == 3:
            ends[parts[1], parts[2]] = value
        elif parts[0] == "job_duration_le" and len(parts) == 3:
            durations.setdefault(parts[1], {})[parts[2]] = value
        elif parts[0] == "job_duration_sum" and len(parts) == 2:
            durations.setdefault(parts[1], {})["sum"] = value
        elif parts[0] == "latency_le" and len(parts) == 2:
            start[parts[1]] = value
        elif key == "latency_sum":
            start["sum"] = value
    for name, value in sorted(starts.items()):
        started.add_metric([name], value)
    for (name, status), value in sorted(ends.items()):
        finished.add_metric([name, status], value)
    yield started
    yield finished
    yield CounterMetricFamily("sma_output_lines", "Records jobs wrote",
                              value=counters.get("output_lines", 0.0))
    yield CounterMetricFamily("sma_output_bytes", "Bytes of the records jobs wrote (UTF-8)",
                              value=counters.get("output_bytes", 0.0))
    duration = HistogramMetricFamily("sma_job_duration_seconds", "Run time of runs that "
                                     "ended, by runbook", labels=["runbook"])
    for name, fields in sorted(durations.items()):
        duration.add_metric([name], cumulate(DURATION_BUCKETS, fields), fields.get("sum", 0.0))
    yield duration
    latency = HistogramMetricFamily("sma_job_start_latency_seconds", "From start request to "
                                    "the process running (first attempts)")
    latency.add_metric([], cumulate(LATENCY_BUCKETS, start), start.get("sum", 0.0))
    yield latency


def _gauges(cluster: _Cluster):
    groups = sorted(cluster.groups)
    families = {
        "online": GaugeMetricFamily("sma_workers_online", "Workers with a recent heartbeat",
                                    labels=["group"]),
        "capacity": GaugeMetricFamily("sma_worker_capacity", "Job slots (concurrency) of "
                                      "the workers online", labels=["group"]),
        "busy": GaugeMetricFamily("sma_worker_busy_slots", "Slots of the workers online "
                                  "running a job (Activating, Running, Stopping, "
                                  "Suspending)", labels=["group"]),
        "waiting": GaugeMetricFamily("sma_jobs_waiting", "Jobs New or Resuming (not yet "
                                     "claimed by a worker)", labels=["group"]),
    }
    for group in groups:
        families["online"].add_metric([group], cluster.online[group])
        families["capacity"].add_metric([group], cluster.capacity[group])
        families["busy"].add_metric([group], cluster.busy[group])
        families["waiting"].add_metric([group], sum(cluster.jobs[group, s] for s in _WAITING))
    yield from families.values()
    active = GaugeMetricFamily("sma_jobs_active", "Jobs not yet ended, by current status",
                               labels=["status", "group"])
    for status in _NOT_ENDED:
        for group in groups:
            active.add_metric([status, group], cluster.jobs[group, status])
    yield active


def _queue_depth(client, groups: set[str]):
    depth = GaugeMetricFamily("sma_queue_depth", "Messages waiting in a worker group's "
                              "Celery queue", labels=["group"])
    if client is not None:
        names = sorted(g for g in groups if is_valid_worker_group(g))
        try:
            pipe = client.pipeline(transaction=False)
            for group in names:
                pipe.llen(queue_name(group))
            for group, length in zip(names, pipe.execute(), strict=True):
                depth.add_metric([group], length)
        except Exception:  # noqa: BLE001 - Redis away: the series are left out
            pass
    return depth


class ServiceCollector:
    """Cluster-wide numbers, read at scrape time."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self):
        settings = self.app.config["SMA_SETTINGS"]
        counters: dict[str, float] = {}
        client = None
        try:
            client = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=2)
            counters = read_counters(client)
        except Exception:  # noqa: BLE001 - a scrape without Redis still shows the rest
            log.warning("metrics: Redis unreachable", exc_info=True)
        try:
            cluster = _read_cluster(settings)
            yield from _counters(counters, cluster.runbooks)
            yield from _gauges(cluster)
            yield _queue_depth(client, cluster.groups)
        finally:
            if client is not None:
                client.close()


@bp.get("/metrics")
def metrics():
    token = current_app.config["SMA_SETTINGS"].metrics_token
    if token:
        from smaweb.auth import require_secret

        require_secret(token, "SMA_METRICS_TOKEN")
    registry = current_app.extensions["sma_metrics_registry"]
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")


def _observe(response):
    began = g.get("sma_t0")  # set by smaweb.requestlog for every request
    if began is not None and request.path.startswith("/api/"):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        REQUESTS.labels(request.method, endpoint, str(response.status_code)).observe(
            time.perf_counter() - began)
    return response


def init_app(app: Flask) -> None:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
    registry.register(ServiceCollector(app))
    app.extensions["sma_metrics_registry"] = registry
    app.after_request(_observe)
    app.register_blueprint(bp)
