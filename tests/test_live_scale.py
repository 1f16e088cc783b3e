"""Live output scales with viewers: 200 followers of running jobs and start?wait= waiters on
a real `sma up` (its gunicorn server, smaweb/ggevent.py, its worker and embedded Redis),
while the API answers at once, every follower gets every record in order, and the web
process holds one Redis subscription. The full figures (1,000 followers, latencies,
memory) are bench/live.py's."""

from __future__ import annotations

import asyncio
import threading
import time

import redis
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from bench.liveclient import follow, start_and_wait
from smacommon.embedded_redis import socket_url
from tests.conftest import ADMIN_TOKEN
from tests.test_sma_up import Up

JOBS = 4
FOLLOWERS = 200
WAITERS = 20
LINES = 100
LONG = (f"import time\n"
        f"for i in range({LINES}):\n"
        f"    print(f'line {{i}}', flush=True)\n"
        f"    time.sleep(0.25)\n")


def _live_connections(redis_url: str) -> list[dict]:
    return [c for c in redis.Redis.from_url(redis_url).client_list()
            if c.get("name", "").startswith("sma-live-")]


def test_two_hundred_followers_and_waiters_leave_the_api_prompt(tmp_path):
    data = tmp_path / "data"
    up = Up(data, ["--workers", str(JOBS + 2)],
            env={"SMA_ADMIN_TOKEN": ADMIN_TOKEN, "SMA_MAX_CONNECTIONS_PER_ADDRESS": "0"})
    try:
        up.wait_for("Press Ctrl-C")
        up.wait_ready()
        try:
            _followers_and_waiters(up, socket_url(data / "redis"))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nsma up printed:\n{up.output()[-6000:]}") from None
        assert up.interrupt() == 0
    finally:
        up.kill()


def _followers_and_waiters(up: Up, redis_url: str) -> None:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    # a kept-alive connection that the server ends (idle for gunicorn's keepalive, 2 s) just
    # as a request goes out on it is HTTP/1.1's own race: a client retries a GET once, as
    # sma's client does (smacli/client.py); CI's loaded machine hit it while the followers
    # connected
    s.mount("http://", HTTPAdapter(max_retries=Retry(total=2, connect=2, read=2,
                                                     allowed_methods={"GET"})))
    for name, content in (("live-long", LONG), ("live-quick", "print('quick')\n")):
        assert s.post(f"{up.url}/api/v1/runbooks", json={
            "name": name, "runbook_type": "python", "content": content}).status_code == 201
        assert s.post(f"{up.url}/api/v1/runbooks/{name}/publish").status_code == 201
    jobs = [s.post(f"{up.url}/api/v1/runbooks/live-long/start", json={}).json()["id"]
            for _ in range(JOBS)]
    all_connected = threading.Event()
    outcome: dict = {}

    async def clients() -> None:
        connected = [asyncio.Event() for _ in range(FOLLOWERS)]
        followers = [asyncio.create_task(follow("127.0.0.1", up.port, ADMIN_TOKEN,
                                                jobs[i % JOBS], 120, connected[i]))
                     for i in range(FOLLOWERS)]
        waiters = [asyncio.create_task(start_and_wait("127.0.0.1", up.port, ADMIN_TOKEN,
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
            answer = s.get(f"{up.url}{path}", timeout=10)
            took = time.monotonic() - began
            assert answer.status_code == 200, answer.text
            assert took < 2, (path, took)
        time.sleep(0.2)
    statuses = {s.get(f"{up.url}/api/v1/jobs/{j}").json()["status"] for j in jobs}
    assert statuses == {"Running"}  # the followers were measured while the jobs ran

    # one Redis connection of the (one) web process, hearing every job's channel through
    # one pattern (and its own wake channel), however many jobs it follows; sma up's Redis
    # is its own, so every client on it is sma's
    live = _live_connections(redis_url)
    assert len(live) == 1, live
    assert (int(live[0]["psub"]), int(live[0]["sub"])) == (1, 1), live
    assert len(redis.Redis.from_url(redis_url).client_list()) < 50

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
    while _live_connections(redis_url):
        assert time.monotonic() < deadline
        time.sleep(0.5)
