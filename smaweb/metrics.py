"""GET /metrics in the Prometheus text format (see smacommon.metrics for where numbers come
from). No token: like /health, it is meant for the monitoring network."""

from __future__ import annotations

import logging
import os
import time

import redis
from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select

from smacommon.db import get_engine, read_connection
from smacommon.metrics import DURATION_BUCKETS, LATENCY_BUCKETS, SEP, _le, read_counters
from smacommon.models import Job, Worker
from smacommon.services.workers import is_online
from smacommon.workergroups import is_valid_worker_group, queue_name

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)
REQUESTS = Histogram("sma_api_request_duration_seconds", "API request time by endpoint",
                     ["method", "endpoint"], buckets=LATENCY_BUCKETS[:-1])


class ServiceCollector:
    """Cluster-wide numbers, read at scrape time."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self):
        settings = self.app.config["SMA_SETTINGS"]
        counters: dict[str, float] = {}
        queue_depth: dict[str, int] = {}
        client = None
        try:
            client = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=2)
            counters = read_counters(client)
        except Exception:  # noqa: BLE001 - a scrape without Redis still shows the rest
            log.warning("metrics: Redis unreachable", exc_info=True)
        started = CounterMetricFamily("sma_jobs_started", "Jobs whose process started "
                                      "(first attempts)", labels=["runbook"])
        finished = CounterMetricFamily("sma_jobs_finished", "Jobs that ended, by final status",
                                       labels=["runbook", "status"])
        for field, value in counters.items():
            parts = field.split(SEP)
            if parts[0] == "jobs_started" and len(parts) == 2:
                started.add_metric([parts[1]], value)
            elif parts[0] == "jobs_finished" and len(parts) == 3:
                finished.add_metric([parts[1], parts[2]], value)
        yield started
        yield finished
        yield CounterMetricFamily("sma_output_lines", "Records jobs wrote",
                                  value=counters.get("output_lines", 0.0))
        yield _histogram("sma_job_duration_seconds", "Run time of finished jobs",
                         "job_duration", DURATION_BUCKETS, counters)
        yield _histogram("sma_job_start_latency_seconds", "From start request to the "
                         "process running", "start_latency", LATENCY_BUCKETS, counters)
        engine = get_engine(settings.effective_database_url)
        online = GaugeMetricFamily("sma_workers_online", "Workers with a recent heartbeat",
                                   labels=["group"])
        waiting = GaugeMetricFamily("sma_jobs_waiting", "Jobs New or Resuming (not yet "
                                    "claimed by a worker)", labels=["group"])
        active = GaugeMetricFamily("sma_jobs_active", "Jobs by current non-final status",
                                   labels=["status"])
        with read_connection(engine) as conn:
            groups = set()
            for group, count in conn.execute(
                    select(Worker.worker_group, func.count())
                    .where(is_online(settings.worker_heartbeat_seconds))
                    .group_by(Worker.worker_group)):
                online.add_metric([group], count)
                groups.add(group)
            for group, count in conn.execute(
                    select(Job.worker_group, func.count())
                    .where(Job.status.in_(["New", "Resuming"])).group_by(Job.worker_group)):
                waiting.add_metric([group], count)
                groups.add(group)
            for status, count in conn.execute(
                    select(Job.status, func.count()).where(Job.status.in_(
                        ["New", "Activating", "Running", "Stopping", "Suspending", "Suspended",
                         "Resuming"])).group_by(Job.status)):
                active.add_metric([status], count)
        yield online
        yield waiting
        yield active
        depth = GaugeMetricFamily("sma_queue_depth", "Messages waiting in a worker group's "
                                  "Celery queue", labels=["group"])
        if client is not None:
            try:
                for group in sorted(g for g in groups if is_valid_worker_group(g)):
                    queue_depth[group] = client.llen(queue_name(group))
                    depth.add_metric([group], queue_depth[group])
            except Exception:  # noqa: BLE001
                pass
            client.close()
        yield depth


def _histogram(name: str, doc: str, key: str, buckets, counters: dict[str, float]):
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], [(_le(b), counters.get(f"{key}_bucket{SEP}{_le(b)}", 0.0))
                           for b in buckets],
                      counters.get(f"{key}_sum", 0.0))
    return family


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
        REQUESTS.labels(request.method, endpoint).observe(time.perf_counter() - began)
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
