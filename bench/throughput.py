"""Trivial-job throughput through the batch endpoint against a private stack (2 workers).

Prints JSON: jobs/s completed for N trivial Python jobs (BENCH_JOBS, 5,000 by default)
started through `POST /api/v1/jobs/batch` in batches of 1,000, from the first job created to
the last one ended, and, measured in the same run, the floor: the same script run N times
as bare processes of the venv's interpreter, 2 at a time like the 2 worker processes: half
of them before the stack starts and half after it stopped, so a machine whose load changes
meanwhile weighs on both figures alike.
Target: at least 1.0x the bare rate. SMA_BENCH_DATABASE_URL / SMA_BENCH_REDIS_URL select
a database and broker (SQLite and an embedded Redis by default), as for every benchmark.
"""

from __future__ import annotations

import json
import os
import time

from common import make_runbook, ms, percentile, start_stack, stop_stack, ts, wait_all
from jobs import CONCURRENCY, SCRIPT, bare_rate

N = int(os.environ.get("BENCH_JOBS", "5000"))
BATCH = 1000  # the most one request takes (JobBatchSchema)


def submit(session, url: str, name: str, n: int) -> tuple[list[str], list[float]]:
    """Start `n` jobs of `name` in batches of BATCH; their ids, and each request's seconds."""
    ids: list[str] = []
    took: list[float] = []
    while len(ids) < n:
        size = min(BATCH, n - len(ids))
        began = time.perf_counter()
        resp = session.post(f"{url}/api/v1/jobs/batch",
                            json={"jobs": [{"runbook": name}] * size})
        took.append(time.perf_counter() - began)
        resp.raise_for_status()
        ids += [job["id"] for job in resp.json()["items"]]
    return ids, took


def main() -> None:
    load = os.getloadavg()
    floor_before = bare_rate(max(1, N // 2), CONCURRENCY)
    stack, session = start_stack(CONCURRENCY)
    url = stack.api_url
    try:
        make_runbook(session, url, "bench-trivial", SCRIPT)
        began = time.time()
        ids, took = submit(session, url, "bench-trivial", N)
        submitted = time.time()
        jobs = wait_all(session, url, ids, 60 + N)
        done = time.time()
    finally:
        stop_stack(stack)
    failed = [j for j in jobs if j["status"] != "Completed"]
    first_created = min(ts(j["created_at"]) for j in jobs)
    last_end = max(ts(j["end_time"]) for j in jobs)
    rate = N / (last_end - first_created)
    floor_after = bare_rate(max(1, N - N // 2), CONCURRENCY)
    # the rate of all N runs: N over the time the two halves took
    floor = N / (N // 2 / floor_before + (N - N // 2) / floor_after)
    print(json.dumps({
        "benchmark": "throughput",
        "jobs": N,
        "batch_size": BATCH,
        "worker_processes": CONCURRENCY,
        "database": "postgresql" if os.environ.get("SMA_BENCH_DATABASE_URL") else "sqlite",
        "failed": len(failed),
        "batch_request_ms": {"p50": ms(percentile(took, 50)), "max": ms(max(took))},
        "submit_seconds": round(submitted - began, 2),
        "wall_seconds": round(done - began, 2),
        "jobs_per_second": round(rate, 1),
        "bare_process_per_second": round(floor, 1),
        "bare_process_per_second_before_after": [round(floor_before, 1),
                                                 round(floor_after, 1)],
        "ratio_to_bare": round(rate / floor, 3),
        "load_average_before": [round(x, 2) for x in load],
        "targets": {"ratio_to_bare": ">= 1.0"},
    }, indent=2))


if __name__ == "__main__":
    main()
