"""A Redis restart under busy workers: they stay up, and the jobs the broker lost (or a
consumer could not put back) run within seconds of it being back, not after the reaper's
SMA_REQUEUE_NEW_AFTER_SECONDS."""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import UTC, datetime

import pytest
import requests

from smacommon.embedded_redis import EmbeddedRedis, free_port
from tests.conftest import _reset_settings, wait_for
from tests.test_sma_up import Up

SLEEPER = "import time\ntime.sleep(1)\nprint('done')\n"


def test_a_task_channel_closes_after_its_broker_died(tmp_path):
    """The kombu bug behind "Unrecoverable error: AttributeError(\"'NoneType' object has no
    attribute 'hostname'\")": a channel waiting on BRPOP and holding a message, its broker
    gone, closed by collect() then close() as Celery's consumer does after a lost link."""
    from kombu import Connection, Consumer, Exchange, Producer, Queue

    from smaworker.broker import patch_kombu

    patch_kombu()  # as smaworker.celery_app does in every worker
    server = EmbeddedRedis(tmp_path / "redis", persist=False, port=free_port()).start()
    try:
        conn = Connection(server.url)
        tasks = conn.default_channel
        queue = Queue("work", routing_key="work")
        Producer(conn.channel()).publish({"n": 1}, routing_key="work", declare=[queue])
        held = []
        tasks.basic_qos(0, 5, False)
        Consumer(tasks, [queue], callbacks=[lambda body, message: held.append(message)]
                 ).consume()
        # the worker's remote control: a fanout queue that is deleted when its channel closes
        control = Queue("control", Exchange("control", type="fanout"), auto_delete=True)
        Consumer(conn.channel(), [control], callbacks=[lambda body, message: None]).consume()
        deadline = time.monotonic() + 10
        while not held and time.monotonic() < deadline:
            _drain(conn, 0.5)
        _drain(conn, 0.3)  # nothing more to read: leaves the next BRPOP in flight
        assert held and tasks._in_poll and tasks.qos._delivered
        server.stop()
        conn.collect()
        conn.close()  # raised AttributeError before the patch
        assert tasks.closed
    finally:
        server.stop()


def _drain(conn, timeout: float) -> None:
    try:
        conn.drain_events(timeout=timeout)
    except TimeoutError:
        pass


@pytest.fixture
def private_redis(tmp_path, monkeypatch, request):
    """A redis-server of this test (with or without persistence), used by the API too."""
    server = EmbeddedRedis(tmp_path / "redis", persist=request.param, port=free_port()).start()
    monkeypatch.setenv("SMA_REDIS_URL", server.url)
    _reset_settings()
    yield server
    server.stop()
    monkeypatch.undo()
    _reset_settings()


def _start(job: dict) -> datetime:
    return datetime.fromisoformat(job["start_time"])


@pytest.mark.parametrize("private_redis", [False, True], ids=["lost", "persisted"],
                         indirect=True)
def test_a_worker_stays_up_and_waiting_jobs_run_soon_after_a_redis_restart(
        api, processes, private_redis):
    group = f"g-{uuid.uuid4().hex[:6]}"
    # no beat, and a reaper that would wait long: only the worker brings lost messages back
    worker = processes.worker(group, concurrency=2, env={
        "SMA_REDIS_URL": private_redis.url, "SMA_REQUEUE_NEW_AFTER_SECONDS": "600"})
    pid = worker.proc.pid
    rb = api.create_runbook(content=SLEEPER, worker_group=group)
    ids, waits, first = [], [], []
    for _restart in range(2):
        batch = [api.start(rb["name"])["id"] for _ in range(8)]
        ids += batch
        wait_for(lambda b=batch: sum(api.get(f"/api/v1/jobs/{i}").get_json()["status"]
                                      == "Running" for i in b) == 2, what="two jobs running")
        waiting = [i for i in batch
                   if api.get(f"/api/v1/jobs/{i}").get_json()["status"] == "New"]
        assert len(waiting) >= 4
        private_redis.stop()
        during = [api.start(rb["name"])["id"] for _ in range(2)]  # not sent: no broker
        ids += during
        time.sleep(1.5)
        private_redis.start()
        back = datetime.now(UTC)
        jobs = [api.wait(i, timeout=60) for i in waiting + during]
        assert all(job["status"] == "Completed" for job in jobs), jobs
        starts = sorted((_start(job) - back).total_seconds() for job in jobs)
        first.append(starts[0])
        waits.append(starts[-1])
    for job_id in ids:
        assert api.wait(job_id, timeout=60)["status"] == "Completed"
    print(f"after Redis was back: first waiting job running in {first} s, the last of "
          f"{len(waiting) + 2} (2 slots, 1 s each) in {waits} s")
    assert worker.proc.poll() is None and worker.proc.pid == pid
    log = worker.log_path.read_text()
    assert "Unrecoverable error" not in log and '"level": "critical"' not in log
    assert max(first) < 10 and max(waits) < 20
    dropped = log.count("message dropped")
    print(f"duplicate messages dropped by the claim: {dropped}")
    if private_redis.persist:  # the queue kept its messages: they were not sent twice
        # (but for one a slot took while the worker looked: at most one per slot each time)
        assert dropped <= 2 * 2
    else:
        assert "waiting job(s) of group" in log


def test_sma_up_starts_its_redis_again(tmp_path):
    data = tmp_path / "data"
    up = Up(data)
    try:
        token = up.wait_for("Admin token").rsplit(" ", 1)[-1].strip()
        up.wait_for("Press Ctrl-C")
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        assert s.post(f"{up.url}/api/v1/runbooks", json={
            "name": "sleeper", "runbook_type": "python", "content": SLEEPER}).status_code == 201
        assert s.post(f"{up.url}/api/v1/runbooks/sleeper/publish").status_code == 201
        before = _children(up.proc.pid)
        ids = [s.post(f"{up.url}/api/v1/runbooks/sleeper/start", json={}).json()["id"]
               for _ in range(6)]
        os.kill(before["redis-server"], signal.SIGKILL)
        up.wait_for("starting it again", timeout=30)
        for job_id in ids:
            wait_for(lambda j=job_id: s.get(f"{up.url}/api/v1/jobs/{j}").json()["status"]
                      == "Completed", timeout=60, what=f"job {job_id}")
        after = _children(up.proc.pid)
        assert after["redis-server"] != before["redis-server"]
        for name in ("celery worker", "celery beat", "gunicorn"):
            assert name in before and after.get(name) == before[name], (before, after)
        assert up.proc.poll() is None
        assert "Unrecoverable error" not in "".join(up.seen)
    finally:
        up.kill()


def _children(pid: int) -> dict[str, int]:
    """The direct children of `pid` by what they are: redis-server, celery worker, celery
    beat, gunicorn."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        for child in map(int, fh.read().split()):
            with open(f"/proc/{child}/comm") as comm, \
                    open(f"/proc/{child}/cmdline", "rb") as cmd:
                name, argv = comm.read().strip(), cmd.read().split(b"\0")
            if b"celery" in argv:
                name = "celery " + ("beat" if b"beat" in argv else "worker")
            elif any(b"gunicorn" in arg for arg in argv):
                name = "gunicorn"
            found[name] = child
    return found


def test_resend_sends_what_the_queue_lacks_one_worker_at_a_time(api, services):
    import redis

    from smacommon.db import get_engine
    from smacommon.queue import enqueue_job
    from smacommon.workergroups import queue_name
    from smaworker.resend import resend_waiting

    group = f"g-{uuid.uuid4().hex[:6]}"  # no worker: the jobs stay New, their messages queued
    rb = api.create_runbook(content=SLEEPER, worker_group=group)
    ids = [api.start(rb["name"])["id"] for _ in range(4)]
    client = redis.Redis.from_url(services["redis_url"])
    queue = queue_name(group)
    assert client.llen(queue) == 4
    client.rpop(queue)  # the oldest message is lost, as in a Redis restarted without its data
    sent: list[str] = []

    def enqueue(job_id: str, worker_group: str) -> None:
        sent.append(job_id)
        enqueue_job(job_id, worker_group)

    engine = get_engine(services["database_url"])
    lock = client.lock(f"sma:resend:{queue}", timeout=10)
    assert lock.acquire(blocking=False)  # another worker of the group is at it
    assert resend_waiting(engine, services["redis_url"], group, enqueue) == 0 and not sent
    lock.release()
    assert resend_waiting(engine, services["redis_url"], group, enqueue) == 1
    assert sent == [ids[0]] and client.llen(queue) == 4
    assert resend_waiting(engine, services["redis_url"], group, enqueue) == 0  # all queued
    client.delete(queue)
