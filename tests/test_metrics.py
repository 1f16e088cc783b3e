"""/metrics: Prometheus text that parses, and counters that move when jobs run."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_TOKEN


def _scrape(client) -> dict[tuple[str, tuple], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


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
    deadline = time.monotonic() + 10  # workers send their counts in the background
    while True:
        after = _scrape(client)
        if _value(after, "sma_jobs_finished_total", runbook="counted-bad",
                  status="Failed") >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert _value(after, "sma_jobs_finished_total", runbook="counted", status="Completed") \
        - _value(before, "sma_jobs_finished_total", runbook="counted", status="Completed") == 2
    assert _value(after, "sma_jobs_finished_total", runbook="counted-bad", status="Failed") == 1
    assert _value(after, "sma_jobs_started_total", runbook="counted") == 2
    assert _value(after, "sma_output_lines_total") >= 10
    assert _value(after, "sma_job_duration_seconds_count") >= 3
    assert _value(after, "sma_job_duration_seconds_bucket", le="+Inf") >= 3
    assert _value(after, "sma_job_start_latency_seconds_count") >= 3
    assert _value(after, "sma_workers_online", group="default") >= 1
    assert _value(after, "sma_jobs_waiting", group="nobody-serves") == 1
    assert ("sma_queue_depth", (("group", "nobody-serves"),)) in after
    api_samples = [k for k in after if k[0] == "sma_api_request_duration_seconds_count"]
    assert any(("endpoint", "/api/v1/runbooks/<runbook>/start") in k[1] for k in api_samples)


def test_a_process_sends_metrics_from_one_thread(services):
    import threading

    import redis

    from smacommon.metrics import KEY, RedisMetrics, read_counters
    from smaworker import tasks

    client = redis.Redis.from_url(services["redis_url"])
    client.delete(KEY)
    before = threading.active_count()
    sink = RedisMetrics(client)
    for _ in range(50):
        sink.job_finished("threads", "Completed", 0.2, 3)
    deadline = time.monotonic() + 10
    while read_counters(client).get("output_lines", 0) < 150:
        assert time.monotonic() < deadline, read_counters(client)
        time.sleep(0.05)
    assert threading.active_count() <= before + 1
    assert read_counters(client)["job_duration_count"] == 50
    saved = tasks._redis, tasks._metrics
    tasks._redis, tasks._metrics = client, None  # as in a worker process, on this Redis
    try:
        assert tasks._metrics_sink() is tasks._metrics_sink()  # one per worker process
    finally:
        tasks._redis, tasks._metrics = saved
    client.delete(KEY)


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
