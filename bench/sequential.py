"""Windmill's sequential workload through the REST API, beside starting Python yourself.

40 light jobs (a Python runbook printing fibo(10)), each started when the previous one
completed, then 10 long jobs (fibo(33)) the same way; every start is `POST /start?wait=`,
answered as soon as the job ends. In the same run, the floor: 40 and 10 runs of the same
script by the venv's interpreter, each a fresh process started by this one. Prints JSON:
totals, per-job p50, ratios to the floor, the targets beside them, and which engine path
ran the jobs (warm or cold; null from a service without the warm engine).

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
LIGHT_SCRIPT = FIBO.format(n=10)
LONG_SCRIPT = FIBO.format(n=33)


def _figures(runs: list[dict]) -> dict:
    per_job = [r["answered"] - r["sent"] for r in runs]
    return {"total_seconds": round(runs[-1]["answered"] - runs[0]["sent"], 3),
            "per_job_ms": {"p50": ms(statistics.median(per_job)), "max": ms(max(per_job))},
            "engine_path": engine_paths(runs)}


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
        light = _figures(run_waited(session, url, "bench-fibo10", LIGHT))
        long = _figures(run_waited(session, url, "bench-fibo33", LONG))
    finally:
        stop_stack(stack)
    light_floor = _floor(bare_runs(LIGHT_SCRIPT, LIGHT))
    long_floor = _floor(bare_runs(LONG_SCRIPT, LONG))
    light_ratio = light["total_seconds"] / light_floor["total_seconds"]
    long_ratio = long["total_seconds"] / long_floor["total_seconds"]
    print(json.dumps({
        "benchmark": "sequential",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load "
                   f"{os.getloadavg()[0]:.2f} at the end",
        "light": {"jobs": LIGHT, "script": "fibo(10)", "sma": light, "bare_process": light_floor,
                  "ratio_to_bare": round(light_ratio, 3),
                  "targets": {"ratio_to_bare": "<= 0.6", "total_seconds": "< 0.5"},
                  "met": light_ratio <= 0.6 and light["total_seconds"] < 0.5},
        "long": {"jobs": LONG, "script": "fibo(33)", "sma": long, "bare_process": long_floor,
                 "ratio_to_bare": round(long_ratio, 3),
                 "targets": {"ratio_to_bare": "<= 1.05"},
                 "met": long_ratio <= 1.05},
        "started_with": "POST /api/v1/runbooks/{name}/start?wait=120, each after the "
                        "previous answered",
    }, indent=2))


if __name__ == "__main__":
    main()
