"""Shared by bench/sequential.py and bench/latency.py: jobs started one after another, each
through `POST /start?wait=` (answered as soon as the job ends), and the bare-interpreter
floor of the same script."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

import redis

FIBO = ("def fibo(n):\n"
        "    return n if n <= 1 else fibo(n - 1) + fibo(n - 2)\n\n\n"
        "print(fibo({n}))\n")


class Announcements:
    """When each job's last announcement reached a listener here: the worker publishes on the
    job's channel after each commit of its records, the last one after the commit of its
    final status (smaworker/finish.py), so the last is when the job's end is in the
    database and live readers are told. Subscribed to every job's channel of the stack's
    Redis (`url`, the stack's own)."""

    def __init__(self, url: str) -> None:
        self.last: dict[str, float] = {}
        self.pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe("sma:job:*:streams")
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        try:
            for message in self.pubsub.listen():
                if message["type"] == "pmessage":
                    self.last[message["channel"].decode().split(":")[2]] = time.time()
        except (redis.RedisError, OSError, ValueError):  # closed: the run is over
            return

    def close(self) -> None:
        self.pubsub.close()


def run_waited(session, url: str, name: str, count: int, wait: float = 120.0) -> list[dict]:
    """`count` jobs of runbook `name`, each started when the previous answered: per job the
    client's clock before the start (`sent`) and at the answer (`answered`), and the job as
    the answer gave it (its final status, start_time, end_time, engine_path)."""
    runs = []
    for _ in range(count):
        sent = time.time()
        resp = session.post(f"{url}/api/v1/runbooks/{name}/start", params={"wait": wait},
                            json={})
        answered = time.time()
        resp.raise_for_status()
        job = resp.json()
        if job["status"] != "Completed":
            raise SystemExit(f"job {job['id']} of {name} ended {job['status']}: "
                             f"{job.get('status_reason')}")
        runs.append({"sent": sent, "answered": answered, "job": job})
    return runs


def engine_paths(runs: list[dict]) -> dict[str, int]:
    """How the jobs ran: warm, cold, or null (a service without the warm engine)."""
    return dict(Counter(str(r["job"].get("engine_path")).replace("None", "null")
                        for r in runs))


def bare_runs(script: str, count: int) -> list[float]:
    """Seconds of each of `count` runs of `script` by this interpreter (the venv's), one
    after another, each a fresh process: the floor."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(script)
    argv = [sys.executable, "-I", "-u", fh.name]
    took = []
    try:
        for _ in range(count):
            began = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
            took.append(time.perf_counter() - began)
    finally:
        os.unlink(fh.name)
    return took
