"""Two commits side by side: a stack of each at once, the same jobs alternating between them.

This machine's speed changes within seconds (a bare interpreter 11.8 to 19.4 ms within an
hour), so two benchmark runs one after the other differ by more than most changes do. Here
a stack runs from this tree and one from another (a `git worktree` of the commit to compare
with), both on this tree's interpreter, and light jobs go to one, then the other (the
order swapped every pair), each `POST /start?wait=` after the previous answered. A change
of the machine's speed then weighs on both alike; the paired difference (this job minus
the other tree's job started right before or after it) says what the change did. Prints
JSON: per tree the p50 and mean of start → Running, start → Completed and start → the
client's answer; the ratio of the p50s; the median of the paired differences; and per tree
the CPU each job cost its stack (every process of it, from /proc: the web server, Celery's
main and pool processes with what they reaped - the warm hosts, their inits -, Redis), by
process, with the ratio of the two totals. On two cores CPU per job bounds the rest: the
stacks share the machine, so a change of its speed weighs on both totals alike.

    git worktree add /tmp/base <commit>
    .venv/bin/python bench/ab.py /tmp/base     # BENCH_AB_JOBS=300 BENCH_AB_N=10 (fibo(n))
    .venv/bin/python bench/ab.py . /tmp/base   # the same, the roles swapped

Measure both ways and take half the difference of the two paired differences: the same
code on both sides (an A/A run) measured up to 0.8 ms a job apart here, the side started
second (THIS) faster; swapping the roles cancels what comes from the side, not the code.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import requests
from common import TOKEN, ts
from waited import FIBO, run_waited

HERE = Path(__file__).resolve().parent.parent
JOBS = int(os.environ.get("BENCH_AB_JOBS", "300"))
SCRIPT = FIBO.format(n=int(os.environ.get("BENCH_AB_N", "10")))
WARMUP = 10

# run in each tree (its working folder first on the path: its own sma), until stdin closes
_LAUNCH = """
import sys
sys.path.insert(0, "bench")
from common import make_runbook, start_stack, stop_stack
stack, session = start_stack(2)
try:
    make_runbook(session, stack.api_url, "bench-ab", sys.argv[1])
    print(stack.api_url, flush=True)
    sys.stdin.read()
finally:
    stop_stack(stack)
"""


def _launch(tree: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, SCRIPT], cwd=tree,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    url = proc.stdout.readline().strip()
    if not url:
        proc.wait(timeout=60)
        raise SystemExit(f"the stack of {tree} did not start (exit {proc.returncode})")
    return proc, url


_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _kind(cmdline: str, parent: str) -> str:
    if "gunicorn" in cmdline:
        return "web"
    if "celery" in cmdline and " beat" in cmdline:
        return "beat"
    if "celery" in cmdline:
        return "worker pool (and what it reaped)" if "celery" in parent else "worker main"
    if "redis" in cmdline:
        return "redis"
    return "other (and what it reaped)"


def _cpu(root: int) -> dict[tuple[int, str], tuple[str, int]]:
    """Every process under `root`: its kind and CPU ticks (its own and its reaped
    children's), keyed by pid and start time."""
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        procs[int(entry)] = (int(fields[1]), fields[19], cmdline,
                             sum(int(f) for f in fields[11:15]))
    found = {}
    for pid, (ppid, started, cmdline, ticks) in procs.items():
        up, inside = ppid, False
        while up > 1:
            if up == root:
                inside = True
                break
            up = procs[up][0] if up in procs else 0
        if inside:
            found[(pid, started)] = (_kind(cmdline, procs.get(ppid, (0, "", "", 0))[2]), ticks)
    return found


def _cpu_per_job(before: dict, after: dict, jobs: int) -> dict:
    kinds: dict[str, float] = {}
    for key, (kind, ticks) in after.items():
        kinds[kind] = kinds.get(kind, 0) + ticks - before.get(key, (kind, 0))[1]
    per_job = {kind: round(ticks * _TICK_MS / jobs, 2) for kind, ticks in
               sorted(kinds.items(), key=lambda item: -item[1]) if ticks}
    return {"total": round(sum(per_job.values()), 2), **per_job}


def _figures(runs: list[dict]) -> dict:
    def p50_mean(values: list[float]) -> dict:
        return {"p50": round(statistics.median(values) * 1000, 2),
                "mean": round(statistics.mean(values) * 1000, 2)}
    return {"start_to_running_ms": p50_mean([ts(r["job"]["start_time"]) - r["sent"]
                                             for r in runs]),
            "start_to_completed_ms": p50_mean([ts(r["job"]["end_time"]) - r["sent"]
                                               for r in runs]),
            "start_to_client_answer_ms": p50_mean([r["answered"] - r["sent"] for r in runs])}


def main() -> None:
    if len(sys.argv) not in (2, 3) or not all((Path(tree) / "smaworker").is_dir()
                                               for tree in sys.argv[1:]):
        raise SystemExit("usage: bench/ab.py OTHER [THIS] (checkouts: the commit to compare "
                         "with, e.g. from `git worktree add /tmp/base <commit>`, and this "
                         "tree's by default)")
    trees = {"other": Path(sys.argv[1]).resolve(),
             "this": Path(sys.argv[2]).resolve() if len(sys.argv) == 3 else HERE}
    stacks = {}
    try:
        for side, tree in trees.items():
            stacks[side] = _launch(tree)
        sessions = {}
        for side in trees:
            sessions[side] = requests.Session()
            sessions[side].headers["Authorization"] = f"Bearer {TOKEN}"
            run_waited(sessions[side], stacks[side][1], "bench-ab", WARMUP)
        runs: dict[str, list[dict]] = {side: [] for side in trees}
        cpu_before = {side: _cpu(stacks[side][0].pid) for side in trees}
        for i in range(JOBS):
            for side in (("other", "this") if i % 2 == 0 else ("this", "other")):
                runs[side] += run_waited(sessions[side], stacks[side][1], "bench-ab", 1)
        cpu = {side: _cpu_per_job(cpu_before[side], _cpu(stacks[side][0].pid), JOBS)
               for side in trees}
    finally:
        for proc, _ in stacks.values():
            proc.stdin.close()
        for proc, _ in stacks.values():
            proc.wait(timeout=120)
    figures = {side: _figures(runs[side]) for side in trees}
    answer = {side: [r["answered"] - r["sent"] for r in runs[side]] for side in trees}
    paired = [t - o for t, o in zip(answer["this"], answer["other"], strict=True)]
    print(json.dumps({
        "benchmark": "ab",
        "trees": {side: str(tree) for side, tree in trees.items()},
        "jobs_each": JOBS, "script": SCRIPT.strip().splitlines()[-1],
        **figures,
        "ratio_of_p50_answers": round(figures["this"]["start_to_client_answer_ms"]["p50"]
                                      / figures["other"]["start_to_client_answer_ms"]["p50"],
                                      3),
        "paired_median_difference_ms": round(statistics.median(paired) * 1000, 2),
        "cpu_ms_per_job": cpu,
        "ratio_of_cpu_per_job": round(cpu["this"]["total"] / cpu["other"]["total"], 3),
        "method": "both stacks at once; jobs alternate between them, each started when the "
                  "previous answered",
    }, indent=2))


if __name__ == "__main__":
    main()
