"""The lean start path: a start is one transaction and one message written straight to
Redis (smacommon.publisher), a batch of 1,000 jobs one transaction and one LPUSH, and a real
Celery worker runs what was published; a broker that is down costs a start no time."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from contextlib import contextmanager

import pytest
import redis
from sqlalchemy import event, text

from smacommon.db import get_engine
from smacommon.embedded_redis import EmbeddedRedis, free_port
from tests.conftest import _reset_settings, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def private_redis(tmp_path, monkeypatch):
    """A redis-server of this test only, used by the API: its command counts are ours."""
    server = EmbeddedRedis(tmp_path / "redis", persist=False, port=free_port()).start()
    monkeypatch.setenv("SMA_REDIS_URL", server.url)
    _reset_settings()
    yield server
    server.stop()
    monkeypatch.undo()
    _reset_settings()


def _lpush_calls(client: redis.Redis) -> int:
    return client.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0)


def _queued_job_ids(client: redis.Redis, group: str) -> list[str]:
    """The job of each message waiting in the group's queue, oldest first, each checked to
    be the message Celery's worker expects (task protocol 2, as kombu stores it)."""
    found = []
    for raw in reversed(client.lrange(f"sma.q.{group}", 0, -1)):
        message = json.loads(raw)
        assert message["headers"]["task"] == "sma.run_job"
        assert message["properties"]["delivery_info"]["routing_key"] == f"sma.q.{group}"
        assert message["properties"]["body_encoding"] == "base64"
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        assert kwargs == {} and len(args) == 1
        found.append(args[0])
    return found


@contextmanager
def _counting(database_url: str):
    """Commits and statements this thread sends to the database meanwhile."""
    engine = get_engine(database_url)
    me = threading.get_ident()
    seen = {"commits": 0, "statements": 0}

    def on_commit(_conn):
        if threading.get_ident() == me:
            seen["commits"] += 1

    def on_statement(*_args):
        if threading.get_ident() == me:
            seen["statements"] += 1

    event.listen(engine, "commit", on_commit)
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        yield seen
    finally:
        event.remove(engine, "commit", on_commit)
        event.remove(engine, "before_cursor_execute", on_statement)


def _count(services, group: str, status: str) -> int:
    with get_engine(services["database_url"]).connect() as conn:
        return conn.execute(text("SELECT count(*) FROM jobs WHERE worker_group = :g "
                                 "AND status = :s"), {"g": group, "s": status}).scalar()


def test_a_start_is_one_transaction_and_one_message_a_real_worker_runs(
        api, services, processes, private_redis):
    group = f"p-{uuid.uuid4().hex[:6]}"
    rb = api.create_runbook(content="print('published straight')\n", worker_group=group)
    client = redis.Redis.from_url(private_redis.url)
    before = _lpush_calls(client)
    with _counting(services["database_url"]) as seen:
        job = api.start(rb["name"])
    assert seen["commits"] == 1, seen
    assert _lpush_calls(client) - before == 1
    assert _queued_job_ids(client, group) == [job["id"]]
    processes.worker(group, env={"SMA_REDIS_URL": private_redis.url})
    done = api.wait(job["id"], timeout=60)
    assert done["status"] == "Completed", done
    assert [r["text"] for r in api.records(job["id"])] == ["published straight"]
    assert client.llen(f"sma.q.{group}") == 0


def test_a_batch_of_1000_is_one_transaction_one_lpush_and_every_job_runs(
        api, services, processes, private_redis):
    group = f"b-{uuid.uuid4().hex[:6]}"
    rb = api.create_runbook(content="import sys\nprint(sys.argv[1])\n", worker_group=group)
    client = redis.Redis.from_url(private_redis.url)
    before = _lpush_calls(client)
    with _counting(services["database_url"]) as seen:
        resp = api.post("/api/v1/jobs/batch", json={"jobs": [
            {"runbook": rb["name"], "arguments": [str(i)]} for i in range(1000)]})
    assert resp.status_code == 201, resp.get_json()
    items = resp.get_json()["items"]
    assert len(items) == 1000 and {j["status"] for j in items} == {"New"}
    assert [j["arguments"] for j in items[:2]] == [["0"], ["1"]]
    assert {j["runbook_name"] for j in items} == {rb["name"]}
    # one commit, and a handful of statements for 1,000 jobs (rows inserted in bulk)
    assert seen["commits"] == 1 and seen["statements"] < 20, seen
    assert _lpush_calls(client) - before == 1
    ids = [j["id"] for j in items]
    assert _queued_job_ids(client, group) == ids  # in order: the first started runs first
    assert _count(services, group, "New") == 1000
    processes.worker(group, env={"SMA_REDIS_URL": private_redis.url})
    wait_for(lambda: _count(services, group, "Completed") == 1000, timeout=600,
             what="the 1,000 jobs completed", every=1)
    assert [r["text"] for r in api.records(ids[999])] == ["999"]
    assert client.llen(f"sma.q.{group}") == 0


def test_with_the_broker_down_starts_answer_at_once_and_run_once_it_is_back(
        api, services, processes, tmp_path, monkeypatch):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    monkeypatch.setenv("SMA_REDIS_URL", url)
    _reset_settings()
    server = EmbeddedRedis(tmp_path / "redis", persist=False, port=port)
    try:
        group = f"d-{uuid.uuid4().hex[:6]}"
        rb = api.create_runbook(content="print('late')\n", worker_group=group)
        began = time.monotonic()
        single = api.start(rb["name"])
        answered = time.monotonic() - began
        batch = api.post("/api/v1/jobs/batch", json={"jobs": [{"runbook": rb["name"]}] * 5})
        assert batch.status_code == 201, batch.get_json()
        assert answered < 2.0 and time.monotonic() - began < 4.0
        ids = [single["id"], *(j["id"] for j in batch.get_json()["items"])]
        assert _count(services, group, "New") == 6
        # back: the worker's connect sends again the waiting jobs without a message (as the
        # reaper would, later)
        server.start()
        processes.worker(group, env={"SMA_REDIS_URL": server.url,
                                     "SMA_REQUEUE_NEW_AFTER_SECONDS": "600"})
        for job_id in ids:
            assert api.wait(job_id, timeout=60)["status"] == "Completed"
    finally:
        server.stop()
        monkeypatch.undo()
        _reset_settings()


def test_a_broker_that_does_not_answer_holds_a_start_only_its_timeout(
        api, services, monkeypatch):
    from smacommon.publisher import CONNECT_TIMEOUT

    silent = socket.socket()  # takes connections (the backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    monkeypatch.setenv("SMA_REDIS_URL", f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
    _reset_settings()
    try:
        rb = api.create_runbook(content="print('later')\n", worker_group="silent-broker")
        began = time.monotonic()
        job = api.start(rb["name"])
        assert time.monotonic() - began < CONNECT_TIMEOUT + 1.5
        assert _count(services, "silent-broker", "New") == 1, job
    finally:
        silent.close()
        monkeypatch.undo()
        _reset_settings()


def test_the_message_is_the_one_send_task_writes(private_redis):
    """Celery's send_task and the publisher, side by side on one queue: the same message
    but for what is unique to each (ids, delivery tag, sender)."""
    from smacommon.publisher import publisher
    from smacommon.queue import RUN_JOB_TASK, producer_app
    from smacommon.settings import get_settings

    job_id = str(uuid.uuid4())
    producer_app().send_task(RUN_JOB_TASK, args=[job_id], queue="sma.q.same")
    publisher(get_settings(), RUN_JOB_TASK).publish([(job_id, "sma.q.same")])
    client = redis.Redis.from_url(private_redis.url)
    celery, ours = (json.loads(raw) for raw in reversed(client.lrange("sma.q.same", 0, -1)))
    unique = {"id", "root_id", "origin", "correlation_id", "reply_to", "delivery_tag"}

    def shape(message: dict) -> dict:
        return {**{k: v for k, v in message.items() if k not in ("headers", "properties")},
                "body": json.loads(base64.b64decode(message["body"])),
                "headers": {k: v for k, v in message["headers"].items() if k not in unique},
                "properties": {k: v for k, v in message["properties"].items()
                               if k not in unique}}

    assert shape(ours) == shape(celery)
    assert message_keys(ours) == message_keys(celery)
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == \
        ours["properties"]["correlation_id"] != celery["headers"]["id"]


def message_keys(message: dict) -> tuple:
    return (sorted(message), sorted(message["headers"]), sorted(message["properties"]))
