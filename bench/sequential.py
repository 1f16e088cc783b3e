"""Windmill's sequential workload through the REST API, beside starting Python yourself.

40 light jobs (a Python runbook printing fibo(10)), each started when the previous one
completed, then 10 long jobs (fibo(33)) the same way; every start is `POST /start?wait=`,
answered as soon as the job ends. In the same run, the floor: 40 and 10 runs of the same
script by the venv's interpreter, each a fresh process started by this one. The jobs and
the floor's runs come in alternating blocks (10 jobs one after another, then 10 bare runs,
four times; the long ones in blocks of 5), so a change of this machine's speed within the
run (seen here within seconds) weighs on both alike; a total is the sum of its jobs'
times, start to answer. Prints JSON: totals, per-job p50, ratios to the floor, the targets
beside them, and which engine path ran the jobs (warm or cold; null from a service without
the warm engine).

    .venv/bin/python bench/sequential.py     # BENCH_LIGHT=40 BENCH_LONG=10
"""

from __future__ import annotations

import json
import os
import platform
import statistics

from common import make_runbook, ms, start_stack, stop_stack
from waited import FIBO, bare_runs, engine_paths, run_waited

LIGHT = int(os.environ.get("BENCH_LIGHT", "40"))
LONG = int(os.environ.get("BENCH_LONG", "10"))
WARMUP = 3  # light jobs first, not counted: the runbook's first start reads it cold
BLOCKS = 4  # the light jobs and their floor alternate in this many blocks (long: half)
LIGHT_SCRIPT = FIBO.format(n=10)
LONG_SCRIPT = FIBO.format(n=33)


def _figures(runs: list[dict]) -> dict:
    per_job = [r["answered"] - r["sent"] for r in runs]
    return {"total_seconds": round(sum(per_job), 3),
            "per_job_ms": {"p50": ms(statistics.median(per_job)), "max": ms(max(per_job))},
            "engine_path": engine_paths(runs)}


def _alternating(session, url: str, name: str, script: str, count: int, blocks: int
                 ) -> tuple[list[dict], list[float]]:
    """`count` jobs of runbook `name` and `count` bare runs of `script`, in `blocks`
    alternating blocks (jobs first)."""
    runs: list[dict] = []
    bare: list[float] = []
    for block in range(blocks):
        size = count // blocks + (1 if block < count % blocks else 0)
        runs += run_waited(session, url, name, size)
        bare += bare_runs(script, size)
    return runs, bare


def _floor(took: list[float]) -> dict:
    return {"total_seconds": round(sum(took), 3),
            "per_job_ms": {"p50": ms(statistics.median(took)), "max": ms(max(took))}}


def main() -> None:
    stack, session = start_stack(2)
    url = stack.api_url
    try:
        make_runbook(session, url, "bench-fibo10", LIGHT_SCRIPT)
        make_runbook(session, url, "bench-fibo33", LONG_SCRIPT)
        run_waited(session, url, "bench-fibo10", WARMUP)
        bare_runs(LIGHT_SCRIPT, WARMUP)  # (the interpreter's files in the page cache)
        light_runs, light_bare = _alternating(session, url, "bench-fibo10", LIGHT_SCRIPT,
                                              LIGHT, BLOCKS)
        long_runs, long_bare = _alternating(session, url, "bench-fibo33", LONG_SCRIPT,
                                            LONG, max(1, BLOCKS // 2))
    finally:
        stop_stack(stack)
    light, long = _figures(light_runs), _figures(long_runs)
    light_floor, long_floor = _floor(light_bare), _floor(long_bare)
    # for comparison: the floor as measured before (after the stack stopped, at once)
    after = _floor(bare_runs(LIGHT_SCRIPT, LIGHT))
    light_ratio = light["total_seconds"] / light_floor["total_seconds"]
    long_ratio = long["total_seconds"] / long_floor["total_seconds"]
    print(json.dumps({
        "benchmark": "sequential",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load "
                   f"{os.getloadavg()[0]:.2f} at the end",
        "light": {"jobs": LIGHT, "script": "fibo(10)", "sma": light, "bare_process": light_floor,
                  "ratio_to_bare": round(light_ratio, 3),
                  "bare_process_after_the_stack_stopped": {
                      **after, "ratio_to_it": round(light["total_seconds"]
                                                   / after["total_seconds"], 3)},
                  "targets": {"ratio_to_bare": "<= 0.6", "total_seconds": "< 0.5"},
                  "met": light_ratio <= 0.6 and light["total_seconds"] < 0.5},
        "long": {"jobs": LONG, "script": "fibo(33)", "sma": long, "bare_process": long_floor,
                 "ratio_to_bare": round(long_ratio, 3),
                 "targets": {"ratio_to_bare": "<= 1.05"},
                 "met": long_ratio <= 1.05},
        "started_with": "POST /api/v1/runbooks/{name}/start?wait=120, each after the "
                        "previous answered",
        "method": f"jobs and bare runs in {BLOCKS} alternating blocks (long: "
                  f"{max(1, BLOCKS // 2)}); a total is the sum of its jobs' or runs' times",
    }, indent=2))


if __name__ == "__main__":
    main()
