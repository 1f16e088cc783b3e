"""Latency of single trivial jobs on an idle stack: start to Running, start to Completed.

200 trivial Python jobs one after another, each `POST /start?wait=` (answered as soon as
the job ends) after the previous answered. For each, from the client's clock just before
the start: to the job's start_time (Running), to its end_time (Completed, the final
transition), and to the client holding the answer; and from the job's end_time to that
answer (the wake: the final commit, the worker's announcement on Redis, the web process's
live hub, the response); and from the final announcement (heard by a listener of this
process on the stack's Redis, after the final commit) to that answer: what the web process
adds once the job's end is in the database. Prints p50/p95/p99 of each as JSON with the
target beside it and which engine path ran the jobs (warm or cold; null from a service
without the warm engine).
The clocks compared are this machine's (client and stack run here).

    .venv/bin/python bench/latency.py     # BENCH_LATENCY_JOBS=200
"""

from __future__ import annotations

import json
import os
import platform
import time

from common import make_runbook, ms, percentile, start_stack, stop_stack, ts
from waited import Announcements, engine_paths, run_waited

N = int(os.environ.get("BENCH_LATENCY_JOBS", "200"))
WARMUP = 5
SCRIPT = "print('ok')\n"


def _pcts(values: list[float]) -> dict:
    return {f"p{p}": ms(percentile(values, p)) for p in (50, 95, 99)}


def main() -> None:
    stack, session = start_stack(2)
    url = stack.api_url
    try:
        make_runbook(session, url, "bench-trivial", SCRIPT)
        run_waited(session, url, "bench-trivial", WARMUP, wait=30)
        heard = Announcements(stack.redis.url if stack.redis
                              else os.environ["SMA_BENCH_REDIS_URL"])
        runs = run_waited(session, url, "bench-trivial", N, wait=30)
        time.sleep(0.2)  # the last announcements reach the listener
        heard.close()
    finally:
        stop_stack(stack)
    to_running = [ts(r["job"]["start_time"]) - r["sent"] for r in runs]
    to_completed = [ts(r["job"]["end_time"]) - r["sent"] for r in runs]
    to_answer = [r["answered"] - r["sent"] for r in runs]
    wake = [r["answered"] - ts(r["job"]["end_time"]) for r in runs]
    told = [r["answered"] - heard.last[r["job"]["id"]] for r in runs
            if r["job"]["id"] in heard.last]
    p50 = percentile(to_completed, 50) * 1000
    print(json.dumps({
        "benchmark": "latency",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load "
                   f"{os.getloadavg()[0]:.2f} at the end",
        "jobs": N,
        "script": SCRIPT.strip(),
        "engine_path": engine_paths(runs),
        "start_to_running_ms": _pcts(to_running),
        "start_to_completed_ms": _pcts(to_completed),
        "start_to_client_answer_ms": _pcts(to_answer),
        "completed_to_client_answer_ms": _pcts(wake),
        "final_announcement_to_client_answer_ms": _pcts(told),
        "announcements_heard": len(told),
        "targets": {"start_to_completed_p50_ms": "< 10 (warm path)"},
        "met": p50 < 10,
        "started_with": "POST /api/v1/runbooks/bench-trivial/start?wait=30, each after the "
                        "previous answered",
    }, indent=2))


if __name__ == "__main__":
    main()
