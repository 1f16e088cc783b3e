"""No worker group can reach the broker's own keys: an operator naming a group after one of
kombu's bookkeeping keys (`unacked`, `_kombu.binding.*`) once made the worker die on
WRONGTYPE, and the reaper sent the job again at every restart.

Real worker and beat processes on a real Redis; the hostile jobs are started through the API
as an operator would, or inserted into the database as an older sma could have left them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
import redis
from sqlalchemy import insert, select

from smacommon.db import get_engine, utcnow
from smacommon.embedded_redis import EmbeddedRedis
from smacommon.models import Job, Runbook
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

# kombu's own keys in the Redis database it shares with sma's queues
KOMBU_KEYS = ["unacked", "unacked_index", "unacked_mutex", "_kombu.binding.default",
              "_kombu.binding.celery.pidbox", "_kombu.binding.celeryev",
              "_kombu.binding.reply.celery.pidbox"]


def test_groups_named_after_broker_keys_cannot_take_a_worker_down(api, services, processes):
    group = f"g-{uuid.uuid4().hex[:6]}"
    own = processes.worker(group)
    hostile = api.create_runbook(content="print('hostile ran')\n")
    waiting = [api.start(hostile["name"], worker_group=name) for name in KOMBU_KEYS]
    for job in waiting:  # routable names: each waits for a worker of its group
        assert job["status"] == "New"
        assert "No worker of group" in job["status_reason"]
    # the worker takes its next messages (where kombu's bookkeeping runs) and stays up
    rb = api.create_runbook(content="print('ran')\n", worker_group=group)
    for _ in range(3):
        done = api.wait(api.start(rb["name"])["id"], timeout=30)
        assert done["status"] == "Completed", done
    assert own.proc.poll() is None, own.log_path.read_text()[-3000:]
    # kombu's keys kept their types: nothing of sma's was pushed onto them
    client = redis.Redis.from_url(services["redis_url"])
    for key in KOMBU_KEYS:
        assert client.type(key) in (b"none", b"hash", b"zset", b"string", b"set"), key
    # each waits in its own queue, which /metrics reads (a WRONGTYPE there once hid them all)
    from tests.test_metrics import _scrape, _value

    samples = _scrape(api.client)
    for name in KOMBU_KEYS:
        assert _value(samples, "sma_queue_depth", group=name) == 1, name
    # a worker of such a group serves it like any other
    processes.worker("unacked")
    job = api.wait(waiting[0]["id"], timeout=30)
    assert job["status"] == "Completed" and job["worker_group"] == "unacked", job


@pytest.mark.parametrize("name", ["a b", "x" * 65, "line\nbreak", "at-the-end\n", "star*",
                                  "col:on", "", ".", ".."])
def test_an_invalid_group_is_refused_at_every_door(api, name):
    rb = api.create_runbook(content="print(1)\n")
    bad = {"worker_group": name}
    answers = [
        api.post("/api/v1/runbooks", json={"name": f"r-{uuid.uuid4().hex[:6]}",
                                           "runbook_type": "python", "content": "x=1", **bad}),
        api.patch(f"/api/v1/runbooks/{rb['name']}", json=bad),
        api.post(f"/api/v1/runbooks/{rb['name']}/start", json=bad),
        api.post("/api/v1/webhooks", json={"name": f"w-{uuid.uuid4().hex[:6]}",
                                           "runbook": rb["name"], **bad}),
    ]
    schedule = api.post("/api/v1/schedules", json={
        "name": f"s-{uuid.uuid4().hex[:6]}", "frequency": "OneTime",
        "start_time": (utcnow() + timedelta(days=1)).isoformat()})
    assert schedule.status_code == 201, schedule.get_json()
    answers.append(api.post(f"/api/v1/schedules/{schedule.get_json()['name']}/runbooks",
                            json={"runbook": rb["name"], **bad}))
    for resp in answers:
        body = resp.get_json()
        if name == "" and resp.status_code < 300:
            continue  # an empty group means "the runbook's own" where it is optional
        assert resp.status_code in (400, 422), (resp.request.path, body)
        assert "worker_group" in str(body["errors"]), (resp.request.path, body)
        assert "letters, digits" in body["message"] or "letters, digits" in str(body["errors"])


def test_a_restart_with_poisoned_jobs_and_keys_comes_up(api, services, processes, tmp_path):
    """What an older sma left behind: jobs of broker-key groups and of names no queue may
    have, and kombu's keys turned into lists by its producer. The worker and beat come up,
    keep serving, and the unroutable jobs end with a reason."""
    broker = EmbeddedRedis(tmp_path / "redis", persist=False).start()
    try:
        client = redis.Redis.from_url(broker.url)
        for key in ("unacked", "unacked_index", "unacked_mutex",
                    "_kombu.binding.celery.pidbox", "_kombu.binding.celeryev"):
            client.lpush(key, '{"poisoned": true}')  # as the old producer's LPUSH did
        group = f"g-{uuid.uuid4().hex[:6]}"
        rb = api.create_runbook(content="print('ran')\n", worker_group=group)
        old = utcnow() - timedelta(minutes=5)
        engine = get_engine(services["database_url"])
        groups = {"unacked": "unacked", "pidbox": "_kombu.binding.celery.pidbox",
                  "space": "has space", "newline": "bad\ngroup", "mine": group}
        ids = {key: uuid.uuid4() for key in groups}
        with engine.begin() as conn:
            version = conn.execute(select(Runbook.published_version_id)
                                   .where(Runbook.name == rb["name"])).scalar_one()
            for key, name in groups.items():
                conn.execute(insert(Job.__table__).values(
                    id=ids[key], runbook_id=uuid.UUID(rb["id"]), runbook_version_id=version,
                    status="New",
                    parameters={}, worker_group=name, started_by="user:old", created_at=old,
                    modified_at=old, attempt=1, depth=0))
        env = {"SMA_REDIS_URL": broker.url}
        worker = processes.worker(group, env=env)
        processes.beat(env=env)
        done = api.wait(str(ids["mine"]), timeout=30)
        assert done["status"] == "Completed", done
        for key in ("space", "newline"):
            job = api.wait(str(ids[key]), timeout=30)
            assert job["status"] == "Failed", job
            assert "is not a valid worker group" in job["status_reason"], job
        for key in ("unacked", "pidbox"):  # valid names: they wait for their worker
            job = api.get(f"/api/v1/jobs/{ids[key]}").get_json()
            assert job["status"] == "New", job
        fresh = api.wait(api.start(rb["name"])["id"], timeout=30)
        assert fresh["status"] == "Completed", fresh
        assert worker.proc.poll() is None, worker.log_path.read_text()[-3000:]
        assert client.type("unacked") in (b"none", b"hash")
    finally:
        broker.stop()


def test_sma_worker_refuses_an_invalid_group_in_one_line(tmp_path):
    env = {**os.environ, "SMA_DATA_DIR": str(tmp_path / "data"),
           "SMA_REDIS_URL": "redis://127.0.0.1:1/0"}
    proc = subprocess.run([sys.executable, "-m", "smacli.main", "worker", "--group", "a b"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("sma: Invalid worker group 'a b': use 1 to 64 letters, "
                                   "digits, '.', '_' or '-' (not '.' or '..').")


def test_a_celery_worker_given_a_bare_queue_refuses(services, tmp_path):
    """`celery -A smaworker worker -Q linux` (how a group was served before the queues got
    their prefix) would consume a queue nothing is sent to: it says so and stops."""
    env = {**os.environ, **services["env"], "SMA_WORKER_GROUP": "linux"}
    proc = subprocess.run([sys.executable, "-m", "celery", "-A", "smaworker", "worker",
                           "-Q", "linux", "-c", "1", "--without-gossip", "--without-mingle",
                           "-l", "INFO"], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert ("this worker would consume linux; serve a worker group with SMA_WORKER_GROUP "
            "(sma worker --group NAME), not celery -Q: the queue of group 'linux' is "
            "'sma.q.linux'") in proc.stderr + proc.stdout
