"""Output capture: one job writes 1,000,000 lines; lines/s captured and worker peak memory.

Prints JSON. Worker memory is summed over the worker's processes (the Celery main process
and its pool process; the runbook is not counted): resident size sampled while the job runs
and each process's peak (VmHWM), which count pages shared after fork twice, and the
proportional set size (PSS), which does not.
"""

from __future__ import annotations

import json
import os
import time

from common import make_runbook, start, start_stack, stop_stack, ts, wait_all

LINES = int(os.environ.get("BENCH_LINES", "1000000"))
CONTENT = (
    "import sys\n"
    "w = sys.stdout.write\n"
    f"for i in range({LINES}):\n"
    "    w(f'line {i} of the output benchmark\\n')\n"
)


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    pids.append(int(entry))
            except (ProcessLookupError, PermissionError):
                pass
    return pids


def _kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:  # the process ended meanwhile
        pass
    return 0


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:  # ended meanwhile, or not ours to read
        pass
    return 0


def main() -> None:
    stack, session = start_stack(1)
    url = stack.api_url
    worker_pgid = stack.procs["worker"].pid
    try:
        make_runbook(session, url, "bench-output", CONTENT)
        idle_rss = sum(_kib(p, "VmRSS") for p in _group_pids(worker_pgid))
        job = start(session, url, "bench-output")
        peak_sum = peak_pss = 0
        while True:
            current = session.get(f"{url}/api/v1/jobs/{job['id']}").json()
            pids = _group_pids(worker_pgid)
            peak_sum = max(peak_sum, sum(_kib(p, "VmRSS") for p in pids))
            peak_pss = max(peak_pss, sum(_pss_kib(p) for p in pids))
            if current["status"] in ("Completed", "Failed"):
                break
            time.sleep(0.05)
        hwm = sum(_kib(p, "VmHWM") for p in _group_pids(worker_pgid))
        (done,) = wait_all(session, url, [job["id"]], 10)
        last = session.get(f"{url}/api/v1/jobs/{job['id']}/streams",
                           params={"after_seq": LINES - 1}).json()["items"]
        complete = (len(last) == 1 and last[0]["seq"] == LINES
                    and last[0]["text"] == f"line {LINES - 1} of the output benchmark")
        elapsed = ts(done["end_time"]) - ts(done["start_time"])
    finally:
        stop_stack(stack)
    print(json.dumps({
        "benchmark": "output",
        "lines": LINES,
        "status": done["status"],
        "complete_and_in_order": complete,
        "seconds": round(elapsed, 2),
        "lines_per_second": round(LINES / elapsed),
        "worker_idle_rss_mb": round(idle_rss / 1024, 1),
        "worker_peak_rss_mb_sampled": round(peak_sum / 1024, 1),
        "worker_peak_rss_mb_hwm": round(hwm / 1024, 1),
        "worker_peak_pss_mb_sampled": round(peak_pss / 1024, 1),
        "targets": {"lines_per_second": ">= 250000 (issue 17)", "worker_peak_rss_mb": "< 200"},
    }, indent=2))


if __name__ == "__main__":
    main()
