"""/metrics: Prometheus text that parses, and counters that move when jobs run."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_TOKEN, wait_for
from tests.test_web_server import AUTH, web  # noqa: F401 - the fixture


def _parse(text: str) -> dict[tuple[str, tuple], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _scrape(client) -> dict[tuple[str, tuple], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    return _parse(resp.get_data(as_text=True))


def _value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _sample(samples, name, **labels) -> float | None:
    """The sample's value; None when the series is missing."""
    return samples.get((name, tuple(sorted(labels.items()))))


def _scrape_when(client, check, what: str) -> dict:
    """Scrape until `check(samples)` holds: processes send their counts in the background."""
    def ready():
        samples = _scrape(client)
        return samples if check(samples) else None

    return wait_for(ready, timeout=10, what=what, every=0.1)


def test_metrics_parse_and_move_when_jobs_run(client, api, worker, services):
    import redis

    redis.Redis.from_url(services["redis_url"]).delete("sma:metrics")
    before = _scrape(client)
    ok = api.create_runbook(name="counted", content="for i in range(5):\n    print(i)\n")
    bad = api.create_runbook(name="counted-bad", content="raise SystemExit(2)\n")
    for _ in range(2):
        assert api.wait(api.start(ok["name"])["id"])["status"] == "Completed"
    assert api.wait(api.start(bad["name"])["id"])["status"] == "Failed"
    api.start(ok["name"], worker_group="nobody-serves")  # waits
    after = _scrape_when(client, lambda s: (
        _value(s, "sma_jobs_finished_total", runbook="counted-bad", status="Failed")
        and _value(s, "sma_job_duration_seconds_count", runbook="counted-bad")
        and _value(s, "sma_job_duration_seconds_count", runbook="counted") >= 2
        and _value(s, "sma_jobs_finished_total", runbook="counted", status="Completed") >= 2),
        "the three jobs counted")
    assert _value(after, "sma_jobs_finished_total", runbook="counted", status="Completed") \
        - _value(before, "sma_jobs_finished_total", runbook="counted", status="Completed") == 2
    assert _value(after, "sma_jobs_finished_total", runbook="counted-bad", status="Failed") == 1
    assert _value(after, "sma_jobs_started_total", runbook="counted") == 2
    assert _value(after, "sma_output_lines_total") >= 10
    assert _value(after, "sma_output_bytes_total") >= 10
    assert _value(after, "sma_job_duration_seconds_count", runbook="counted") == 2
    assert _value(after, "sma_job_duration_seconds_bucket", runbook="counted", le="+Inf") == 2
    assert _value(after, "sma_job_duration_seconds_count", runbook="counted-bad") == 1
    assert _value(after, "sma_job_start_latency_seconds_count") >= 3
    assert _value(after, "sma_workers_online", group="default") >= 1
    assert _value(after, "sma_jobs_waiting", group="nobody-serves") == 1
    assert _value(after, "sma_jobs_active", status="New", group="nobody-serves") == 1
    assert ("sma_queue_depth", (("group", "nobody-serves"),)) in after
    api_samples = [k for k in after if k[0] == "sma_api_request_duration_seconds_count"]
    assert (("endpoint", "/api/v1/runbooks/<runbook>/start"), ("method", "POST"),
            ("status", "201")) in [k[1] for k in api_samples]


def test_a_process_sends_metrics_from_one_thread(tmp_path):
    import threading

    import redis

    from smacommon.embedded_redis import EmbeddedRedis
    from smacommon.metrics import SEP, RedisMetrics, process_sink, read_counters

    # a Redis of its own: the session's workers send their counts to the session's, and
    # one that sent a late second's counts there made these totals wrong
    server = EmbeddedRedis(tmp_path / "redis", persist=False, port=0).start()
    client = redis.Redis.from_url(server.url)
    try:
        before = threading.active_count()
        sink = RedisMetrics(client)
        for _ in range(50):
            sink.job_started("threads", 0.3)
            sink.run_ended("threads", 0.2, 3, 12)
        wait_for(lambda: read_counters(client).get("output_lines", 0) >= 150, timeout=10,
                 what="the 50 runs' counts in Redis")
        assert threading.active_count() <= before + 1
        counts = read_counters(client)
    finally:
        client.close()
        server.stop()
    assert counts["output_bytes"] == 600
    assert counts[f"job_duration_le{SEP}threads{SEP}0.5"] == 50  # its bucket, and no other
    assert [k for k in counts if k.startswith(f"job_duration_le{SEP}")] == \
        [f"job_duration_le{SEP}threads{SEP}0.5"]
    assert counts[f"job_duration_sum{SEP}threads"] == pytest.approx(10.0)
    assert [k for k in counts if k.startswith(f"latency_le{SEP}")] == [f"latency_le{SEP}0.5"]
    assert counts[f"jobs_started{SEP}threads"] == 50 and counts[f"latency_le{SEP}0.5"] == 50
    assert process_sink() is process_sink()  # one per process, as a worker's jobs share it


def test_metrics_token_when_set(services, client):
    from smacommon.settings import get_settings
    from smaweb import create_app

    assert client.get("/metrics").status_code == 200  # none set: open
    settings = get_settings().model_copy(update={"metrics_token": "scrape-secret-1234"})
    guarded = create_app({"TESTING": True, "SMA_SETTINGS": settings}).test_client()
    missing = guarded.get("/metrics")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer <SMA_METRICS_TOKEN>" in missing.get_json()["message"]
    wrong = guarded.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "Wrong token" in wrong.get_json()["message"]
    admin = guarded.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert admin.status_code == 401  # its own token, not an API token
    good = guarded.get("/metrics", headers={"Authorization": "Bearer scrape-secret-1234"})
    assert good.status_code == 200
    assert list(text_string_to_metric_families(good.get_data(as_text=True)))


NOT_ENDED = ("New", "Activating", "Running", "Stopping", "Suspending", "Suspended", "Resuming")
RESTING = ("Completed", "Failed", "Stopped", "Suspended")
GROUP_GAUGES = ("sma_workers_online", "sma_worker_capacity", "sma_worker_busy_slots",
                "sma_jobs_waiting", "sma_queue_depth")


def test_metrics_at_zero(client, api, services):
    """On a fresh database every gauge has its series, reading 0, for each known group and
    status, and every counter one for each runbook and status it can have."""
    import redis

    redis.Redis.from_url(services["redis_url"]).delete("sma:metrics")
    empty = _scrape(client)
    for status in NOT_ENDED:
        assert _sample(empty, "sma_jobs_active", status=status, group="default") == 0
    assert _sample(empty, "sma_jobs_waiting", group="default") == 0
    for name in GROUP_GAUGES:  # the session's worker may have registered again: present
        assert _sample(empty, name, group="default") is not None, name
    for name in ("sma_output_lines_total", "sma_output_bytes_total",
                 "sma_job_start_latency_seconds_count"):
        assert _sample(empty, name) == 0, name
    assert not [k for k in empty if k[0] in ("sma_jobs_started_total",
                                             "sma_jobs_finished_total")]  # no runbook yet

    api.create_runbook(name="never-run", worker_group="idle-group")
    seen = _scrape(client)
    for name in GROUP_GAUGES:
        assert _sample(seen, name, group="idle-group") == 0, name
    for status in NOT_ENDED:
        assert _sample(seen, "sma_jobs_active", status=status, group="idle-group") == 0
    assert _sample(seen, "sma_jobs_started_total", runbook="never-run") == 0
    for status in RESTING:
        assert _sample(seen, "sma_jobs_finished_total", runbook="never-run", status=status) == 0


def test_a_job_stopped_before_it_ran_is_counted_once(client, api, services):
    import redis

    redis.Redis.from_url(services["redis_url"]).delete("sma:metrics")
    # the API histogram lives in this process: other tests' stops are in it already
    before = _scrape(client)
    queued = api.create_runbook(worker_group="nobody-serves")
    job = api.start(queued["name"])  # New: no worker serves its group
    assert api.post(f"/api/v1/jobs/{job['id']}/stop").status_code == 202
    _scrape_when(client, lambda s: _value(s, "sma_jobs_finished_total", runbook=queued["name"],
                                          status="Stopped") == 1,
                 "the job stopped from the queue counted")
    again = api.post(f"/api/v1/jobs/{job['id']}/stop")
    assert again.status_code == 409, again.get_json()
    # counts leave this process in order: once the next job's is in, a second one of the
    # first job's would be too
    other = api.create_runbook(worker_group="nobody-serves")
    assert api.post(f"/api/v1/jobs/{api.start(other['name'])['id']}/stop").status_code == 202
    after = _scrape_when(client, lambda s: _value(
        s, "sma_jobs_finished_total", runbook=other["name"], status="Stopped") == 1,
        "the second job counted")
    assert _value(after, "sma_jobs_finished_total", runbook=queued["name"],
                  status="Stopped") == 1
    assert _value(after, "sma_jobs_started_total", runbook=queued["name"]) == 0
    assert not [k for k in after if k[0] == "sma_job_duration_seconds_count"
                and ("runbook", queued["name"]) in k[1]]  # it never ran: no run time
    # the API histogram tells the refused stop from the accepted ones: an error rate
    stop = {"endpoint": "/api/v1/jobs/<job_id>/stop", "method": "POST"}
    for status, count in (("202", 2), ("409", 1)):
        name = "sma_api_request_duration_seconds_count"
        assert (_value(after, name, **stop, status=status)
                - _value(before, name, **stop, status=status)) == count, status


def test_a_stop_through_the_real_web_server_is_counted(web, api, services):  # noqa: F811
    """gunicorn's gevent worker (as `sma up` runs it) sends its counts from a greenlet."""
    import redis

    redis.Redis.from_url(services["redis_url"]).delete("sma:metrics")
    server = web()
    queued = api.create_runbook(worker_group="nobody-serves")
    job = api.start(queued["name"])
    stop = server.session.post(f"{server.url}/api/v1/jobs/{job['id']}/stop", headers=AUTH,
                               timeout=10)
    assert stop.status_code == 202, stop.text
    assert api.get(f"/api/v1/jobs/{job['id']}").get_json()["status"] == "Stopped"

    def counted():
        samples = _parse(server.get("/metrics").text)
        return _value(samples, "sma_jobs_finished_total", runbook=queued["name"],
                      status="Stopped") == 1 and samples

    after = wait_for(counted, timeout=10, what="the stop counted by the web server")
    assert _value(after, "sma_api_request_duration_seconds_count", method="POST",
                  endpoint="/api/v1/jobs/<job_id>/stop", status="202") == 1


def test_worker_capacity_and_busy_slots(client, api, processes, services):
    group = f"slots-{uuid.uuid4().hex[:6]}"
    processes.worker(group, concurrency=3)
    rb = api.create_runbook(content="import time\ntime.sleep(120)\n", worker_group=group)
    job = api.start(rb["name"])
    api.wait(job["id"], timeout=30, statuses=("Running",))
    busy = _scrape(client)
    assert _sample(busy, "sma_workers_online", group=group) == 1
    assert _sample(busy, "sma_worker_capacity", group=group) == 3
    assert _sample(busy, "sma_worker_busy_slots", group=group) == 1
    assert _sample(busy, "sma_jobs_active", status="Running", group=group) == 1
    assert _sample(busy, "sma_jobs_waiting", group=group) == 0
    assert api.post(f"/api/v1/jobs/{job['id']}/stop").status_code == 202
    assert api.wait(job["id"], timeout=30)["status"] == "Stopped"
    idle = _scrape_when(client, lambda s: _value(
        s, "sma_jobs_finished_total", runbook=rb["name"], status="Stopped") == 1,
        "the stopped job counted by its worker")
    assert _sample(idle, "sma_worker_capacity", group=group) == 3
    assert _sample(idle, "sma_worker_busy_slots", group=group) == 0
    assert _sample(idle, "sma_jobs_active", status="Running", group=group) == 0
    assert _value(idle, "sma_job_duration_seconds_count", runbook=rb["name"]) == 1


def test_output_bytes_and_lines(client, api, worker, services):
    import redis

    redis.Redis.from_url(services["redis_url"]).delete("sma:metrics")
    job = api.run("print('é' * 10)\nprint('abc')\n")  # 20 bytes of UTF-8, then 3
    assert job["status"] == "Completed"
    assert [r["text"] for r in api.records(job["id"])] == ["é" * 10, "abc"]
    after = _scrape_when(client, lambda s: _value(s, "sma_output_lines_total") >= 2,
                         "the job's output counted")
    assert _value(after, "sma_output_lines_total") == 2
    assert _value(after, "sma_output_bytes_total") == 23


def test_counts_wait_for_the_flush_and_all_arrive(services):
    """Counts are added up in the process and sent together: nothing reaches Redis before
    the flush, then every job's count does, in one round trip."""
    import redis

    from smacommon.metrics import KEY, SEP, RedisMetrics, read_counters

    client = redis.Redis.from_url(services["redis_url"])
    client.delete(KEY)
    sink = RedisMetrics(client, interval=3600)  # only the explicit flush sends
    for i in range(200):
        sink.job_started("batched", 0.003)
        sink.run_ended("batched", 0.05, 2, 8)
        sink.job_ended("batched", "Completed" if i % 4 else "Failed")
    assert read_counters(client) == {}  # all of it still in the process
    sink.flush()
    counts = read_counters(client)
    assert counts[f"jobs_started{SEP}batched"] == 200
    assert counts[f"latency_le{SEP}0.005"] == 200
    assert counts["latency_sum"] == pytest.approx(0.6)
    assert counts[f"jobs_finished{SEP}batched{SEP}Completed"] == 150
    assert counts[f"jobs_finished{SEP}batched{SEP}Failed"] == 50
    assert counts["output_lines"] == 400 and counts["output_bytes"] == 1600
    assert counts[f"job_duration_le{SEP}batched{SEP}0.1"] == 200
    sink.flush()  # nothing pending: nothing sent twice
    assert read_counters(client) == counts
    client.delete(KEY)


def test_a_clean_worker_stop_sends_what_its_jobs_counted(api, processes, services):
    """A worker whose processes would send their counts only after an hour sends them all
    when it is told to stop: a clean stop loses no count."""
    import redis

    from smacommon.metrics import SEP, read_counters

    client = redis.Redis.from_url(services["redis_url"])
    group = f"flush-{uuid.uuid4().hex[:6]}"
    worker = processes.worker(group, concurrency=2, env={"SMA_METRICS_FLUSH_SECONDS": "3600"})
    rb = api.create_runbook(content="print('x')\n", worker_group=group)
    ids = [api.start(rb["name"])["id"] for _ in range(6)]
    for job_id in ids:
        assert api.wait(job_id, timeout=60)["status"] == "Completed"
    name = rb["name"]
    assert read_counters(client).get(f"jobs_started{SEP}{name}", 0) == 0  # not sent yet
    worker.stop(timeout=30)  # SIGTERM: a clean stop
    counts = read_counters(client)
    assert counts[f"jobs_started{SEP}{name}"] == 6
    assert counts[f"jobs_finished{SEP}{name}{SEP}Completed"] == 6
    assert sum(v for k, v in counts.items()
               if k.startswith(f"job_duration_le{SEP}{name}{SEP}")) == 6
