"""Live output scales with viewers: 200 followers of running jobs and start?wait= waiters on
the web server `sma up` runs (gunicorn, smaweb/ggevent.py), while the API answers at once,
every follower gets every record in order, and the process holds one Redis subscription.
The full figures (1,000 followers, latencies, memory) are bench/live.py's."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import redis

from bench.liveclient import follow, start_and_wait
from tests.conftest import ADMIN_TOKEN
from tests.test_web_server import AUTH, web  # noqa: F401 - the fixture

JOBS = 4
FOLLOWERS = 200
WAITERS = 20
LINES = 100
LONG = (f"import time\n"
        f"for i in range({LINES}):\n"
        f"    print(f'line {{i}}', flush=True)\n"
        f"    time.sleep(0.25)\n")


def _web_worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def _clients(redis_url: str) -> list[dict]:
    """This test session's clients of the Redis (its database: in CI, parallel test
    processes share one Redis server, each with a database of its own)."""
    client = redis.Redis.from_url(redis_url)
    db = str(client.connection_pool.connection_kwargs.get("db", 0))
    return [c for c in client.client_list() if c.get("db") == db]


def _live_connections(redis_url: str) -> list[dict]:
    return [c for c in _clients(redis_url) if c.get("name", "").startswith("sma-live-")]


def test_two_hundred_followers_and_waiters_leave_the_api_prompt(web, api, processes, worker,  # noqa: F811
                                                                 services):
    server = web(SMA_MAX_CONNECTIONS_PER_ADDRESS="0")
    processes.worker("live", concurrency=JOBS)
    api.create_runbook("live-long", content=LONG, worker_group="live")
    api.create_runbook("live-quick", content="print('quick')\n")
    jobs = [api.start("live-long")["id"] for _ in range(JOBS)]
    all_connected = threading.Event()
    outcome: dict = {}

    async def clients() -> None:
        connected = [asyncio.Event() for _ in range(FOLLOWERS)]
        followers = [asyncio.create_task(follow("127.0.0.1", server.port, ADMIN_TOKEN,
                                                jobs[i % JOBS], 120, connected[i]))
                     for i in range(FOLLOWERS)]
        waiters = [asyncio.create_task(start_and_wait("127.0.0.1", server.port, ADMIN_TOKEN,
                                                      "live-quick", 90))
                   for _ in range(WAITERS)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in connected)), 60)
        all_connected.set()
        outcome["followers"] = await asyncio.gather(*followers)
        outcome["waiters"] = await asyncio.gather(*waiters)

    thread = threading.Thread(target=lambda: outcome.setdefault("error", asyncio.run(clients())))
    thread.start()
    assert all_connected.wait(90), "the followers did not all connect"

    # while they are open, the API and the health check answer promptly
    for _ in range(5):
        for path in ("/api/v1/jobs", "/health/ready"):
            began = time.monotonic()
            answer = server.get(path, headers=AUTH, timeout=10)
            took = time.monotonic() - began
            assert answer.status_code == 200, answer.text
            assert took < 2, (path, took)
        time.sleep(0.2)
    statuses = {server.get(f"/api/v1/jobs/{j}", headers=AUTH).json()["status"] for j in jobs}
    assert statuses == {"Running"}  # the followers were measured while the jobs ran

    # one Redis connection of the web process, subscribed to the followed jobs' channels
    pid = _web_worker_pid(server.proc.pid)
    # (the test process's own hub, had an earlier test used one, may still be there)
    live = [c for c in _live_connections(services["redis_url"])
            if c["name"] == f"sma-live-{pid}"]
    assert len(live) == 1, live
    assert int(live[0]["sub"]) >= JOBS
    assert len(_clients(services["redis_url"])) < 50

    thread.join(120)
    assert not thread.is_alive()
    expected = [f"line {i}" for i in range(LINES)]
    for result in outcome["followers"]:
        assert result.status_code == 200 and result.error is None, result
        assert [text for _, text, _ in result.records] == expected, result.job_id
        assert [seq for seq, _, _ in result.records] == list(range(1, LINES + 1))
        assert result.final["status"] == "Completed"
    for code, job, _ in outcome["waiters"]:
        assert code == 201 and job["status"] == "Completed", job

    # the readers gone, the hub ends its subscription (after its idle time)
    deadline = time.monotonic() + 30
    while any(c["name"] == f"sma-live-{pid}" for c in _live_connections(services["redis_url"])):
        assert time.monotonic() < deadline
        time.sleep(0.5)
