"""Shared by the benchmarks: a private stack (`sma up`'s Stack) and a small REST client."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smacli.stack import Stack  # noqa: E402
from smacommon.embedded_redis import free_port  # noqa: E402

TOKEN = "sma_bench_admin_token"


def start_stack(concurrency: int, env: dict[str, str] | None = None
                ) -> tuple[Stack, requests.Session]:
    folder = Path(tempfile.mkdtemp(prefix="sma-bench-"))
    env = {"SMA_ADMIN_TOKEN": TOKEN, **(env or {})}
    for key in ("SMA_DATABASE_URL", "SMA_REDIS_URL"):
        bench_value = os.environ.get(key.replace("SMA_", "SMA_BENCH_"))
        if bench_value:
            env[key] = bench_value
        else:
            os.environ.pop(key, None)
    log = open(folder / "stack.log", "wb")  # noqa: SIM115 - lives as long as the stack
    stack = Stack(folder / "data", port=free_port(), concurrency=concurrency, env=env,
                  output=log).start()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    wait_for_worker(stack, session)
    return stack, session


def stop_stack(stack: Stack) -> None:
    """Stop the stack and remove its folder (database, Redis, logs): a run leaves nothing in
    the temporary folder; SMA_BENCH_KEEP=1 keeps it, to read stack.log."""
    stack.stop()
    if not os.environ.get("SMA_BENCH_KEEP"):
        shutil.rmtree(stack.data_dir.parent, ignore_errors=True)


def wait_for_worker(stack: Stack, session: requests.Session, timeout: float = 30) -> None:
    """Run one job through so the worker is warm before measuring."""
    make_runbook(session, stack.api_url, "bench-warmup", "print('warm')\n")
    job = start(session, stack.api_url, "bench-warmup")
    wait_all(session, stack.api_url, [job["id"]], timeout)


def make_runbook(session, url: str, name: str, content: str, **fields) -> None:
    resp = session.post(f"{url}/api/v1/runbooks", json={
        "name": name, "runbook_type": "python", "content": content, **fields})
    resp.raise_for_status()
    session.post(f"{url}/api/v1/runbooks/{name}/publish").raise_for_status()


def start(session, url: str, name: str) -> dict:
    resp = session.post(f"{url}/api/v1/runbooks/{name}/start", json={})
    resp.raise_for_status()
    return resp.json()


def wait_all(session, url: str, ids: list[str], timeout: float) -> list[dict]:
    """Wait until none of `ids` is unfinished, asking rarely (is any job of this private
    stack still active? one row at most, every 0.2 s) so the benchmark does not spend the
    CPU it measures; then fetch them all."""
    deadline = time.monotonic() + timeout
    wanted = set(ids)
    active = "New,Activating,Running,Stopping,Suspending,Resuming"
    while time.monotonic() < deadline:
        page = session.get(f"{url}/api/v1/jobs", params={"status": active, "limit": 1}).json()
        if not page["items"]:
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"jobs did not finish in {timeout} s")
    done: dict[str, dict] = {}
    cursor = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = session.get(f"{url}/api/v1/jobs", params=params).json()
        done.update({j["id"]: j for j in page["items"] if j["id"] in wanted})
        cursor = page["next_cursor"]
        if not cursor or len(done) == len(wanted):
            break
    return [done[i] for i in ids]


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


__all__ = ["Stack", "make_runbook", "ms", "percentile", "start", "start_stack", "statistics",
           "ts", "wait_all"]
