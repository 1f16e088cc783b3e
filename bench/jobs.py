"""Trivial-job throughput and latency against a private `sma up`-style stack (2 workers).

Prints JSON: jobs/s completed for N trivial Python jobs started through the REST API,
p50/p95 of start->Running and start->Completed, the same script run N times as bare
processes of the same interpreter (the floor, 2 at a time like the 2 worker processes),
the start->Running latency of single jobs on an idle stack, and the CPU per job of the
stack's processes during the N jobs (the web service with the benchmark's own polling, the
Celery consumer, the pool processes, beat; not the runbook processes themselves).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from common import make_runbook, ms, percentile, start, start_stack, stop_stack, ts, wait_all
from cpu import cpu_seconds, stack_roles

N = int(os.environ.get("BENCH_JOBS", "500"))
CONCURRENCY = 2
SCRIPT = "print('ok')\n"


def bare_rate(n: int, parallel: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(SCRIPT)
    argv = [sys.executable, "-I", "-u", fh.name]

    def one(_):
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)

    began = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - began
    os.unlink(fh.name)
    return n / elapsed


def main() -> None:
    stack, session = start_stack(CONCURRENCY)
    url = stack.api_url
    try:
        make_runbook(session, url, "bench-trivial", SCRIPT)
        # idle latency: one job at a time
        idle = []
        for _ in range(20):
            job = start(session, url, "bench-trivial")
            (done,) = wait_all(session, url, [job["id"]], 30)
            idle.append(ts(done["start_time"]) - ts(done["created_at"]))
        # throughput: N jobs started as fast as the API takes them
        roles = stack_roles({name: proc.pid for name, proc in stack.procs.items()})
        cpu_before = cpu_seconds(roles)
        began = time.time()
        with ThreadPoolExecutor(4) as pool:
            ids = [j["id"] for j in pool.map(lambda _: start(session, url, "bench-trivial"),
                                             range(N))]
        started = time.time()
        jobs = wait_all(session, url, ids, 600)
        time.sleep(1.5)  # the processes' metrics flush (about once a second) belongs to them
        cpu_after = cpu_seconds(roles)
        failed = [j for j in jobs if j["status"] != "Completed"]
        first_created = min(ts(j["created_at"]) for j in jobs)
        last_end = max(ts(j["end_time"]) for j in jobs)
        to_running = [ts(j["start_time"]) - ts(j["created_at"]) for j in jobs]
        to_done = [ts(j["end_time"]) - ts(j["created_at"]) for j in jobs]
        rate = N / (last_end - first_created)
    finally:
        stop_stack(stack)
    floor = bare_rate(N, CONCURRENCY)
    floor_serial = bare_rate(min(N, 200), 1)
    print(json.dumps({
        "benchmark": "jobs",
        "jobs": N,
        "worker_processes": CONCURRENCY,
        "failed": len(failed),
        "api_start_seconds": round(started - began, 2),
        "jobs_per_second": round(rate, 1),
        "start_to_running_ms": {"p50": ms(percentile(to_running, 50)),
                                "p95": ms(percentile(to_running, 95))},
        "start_to_completed_ms": {"p50": ms(percentile(to_done, 50)),
                                  "p95": ms(percentile(to_done, 95))},
        "idle_start_to_running_ms": {"p50": ms(percentile(idle, 50)),
                                     "p95": ms(percentile(idle, 95))},
        "cpu_ms_per_job": {role: round((cpu_after[role] - cpu_before[role]) * 1000 / N, 2)
                           for role in sorted(cpu_after)},
        "bare_process_per_second": round(floor, 1),
        "bare_process_per_second_serial": round(floor_serial, 1),
        "ratio_to_bare": round(rate / floor, 3),
        "targets": {"ratio_to_bare": ">= 0.40", "idle_start_to_running_p50_ms": "< 50"},
    }, indent=2))


if __name__ == "__main__":
    main()
