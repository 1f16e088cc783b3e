"""Chaos benchmark (issue 13): jobs with checkpoints and known output against a stack of its
own — PostgreSQL and Redis in a temporary folder, the web service, 3 workers, beat — while
a chaos loop kills and stalls workers and restarts Redis, PostgreSQL and beat.

Prints JSON: jobs by final status, lost and stuck jobs, the audit of every job's records
(missing, out of order, duplicated beyond at-least-once between checkpoints: see
chaos_audit.py), HTTP answers during and outside faults, processes that died on their
own, the wait from start to Running, and each figure beside its target. Exit code 0 when
every target holds, 1 when one does not (the JSON is printed either way), 2 when the
machine lacks PostgreSQL or Redis. Progress and the fault log go to stderr.

    python bench/chaos.py [--jobs 1000] [--minutes 8] [--seed N] [--set SMA_X=value ...]

sma's own defaults are measured unless --set says otherwise (heartbeat, lease, reaper).
docs/chaos.md says how to run it and read it.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos_audit import RUNBOOK  # noqa: E402
from chaos_faults import KINDS, ChaosLoop  # noqa: E402
from chaos_report import (  # noqa: E402
    SETTLED,
    audit,
    read_api,
    read_database,
    recoveries,
    scan_logs,  # noqa: E402
    targets,
)
from chaos_stack import TOKEN, ChaosStack  # noqa: E402
from chaos_traffic import HttpLog, Reader, Starter, session  # noqa: E402

RUNBOOK_NAME = "chaos"
ACTIVE = "New,Activating,Running,Stopping,Suspending,Resuming"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=1000, help="jobs to start (1000)")
    p.add_argument("--minutes", type=float, default=8.0,
                   help="the starts are spread over this many minutes; the chaos lasts as long")
    p.add_argument("--steps", type=int, default=5, help="checkpointed steps per job (5)")
    p.add_argument("--pause", type=float, default=0.2, help="seconds each step sleeps (0.2)")
    p.add_argument("--workers", type=int, default=3, help="worker processes (3)")
    p.add_argument("--concurrency", type=int, default=2, help="jobs each worker runs (2)")
    p.add_argument("--fault-interval", default="20-40",
                   help="seconds between faults, MIN-MAX, drawn at random (20-40)")
    p.add_argument("--faults", default=",".join(KINDS),
                   help=f"which faults, comma-separated (all: {','.join(KINDS)})")
    p.add_argument("--stall-seconds", type=float, default=20.0,
                   help="how long a stalled worker stays stopped (20)")
    p.add_argument("--restart-after", type=float, default=2.0,
                   help="seconds before a killed worker or beat is started again (2)")
    p.add_argument("--drain-minutes", type=float, default=10.0,
                   help="after the last start, how long jobs may take to end (10)")
    p.add_argument("--readers", type=int, default=2, help="API reader threads (2)")
    p.add_argument("--seed", type=int, default=None, help="random seed (faults, batches)")
    p.add_argument("--no-chaos", action="store_true",
                   help="no faults: the same run on a quiet stack, to calibrate the machine")
    p.add_argument("--set", action="append", default=[], metavar="SMA_X=VALUE",
                   help="a setting for every sma process (repeatable)")
    args = p.parse_args(argv)
    try:
        low, high = (float(x) for x in args.fault_interval.split("-"))
        assert 0 < low <= high
    except (ValueError, AssertionError):
        p.error("--fault-interval is MIN-MAX seconds, e.g. 20-40")
    args.interval = (low, high)
    args.kinds = tuple(k for k in args.faults.split(",") if k)
    if unknown := set(args.kinds) - set(KINDS):
        p.error(f"unknown fault(s) {', '.join(sorted(unknown))}; known: {', '.join(KINDS)}")
    args.settings = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("SMA_"):
            p.error(f"--set wants SMA_NAME=VALUE, not {item!r}")
        args.settings[key] = value
    if args.jobs < 1 or args.steps < 1 or args.workers < 1:
        p.error("--jobs, --steps and --workers must be 1 or more")
    return args


def prepare(stack: ChaosStack, http) -> None:
    """The runbook, published; every worker online."""
    url = f"{stack.api_url}/api/v1"
    http.post(f"{url}/runbooks", json={"name": RUNBOOK_NAME, "runbook_type": "python",
                                       "content": RUNBOOK}, timeout=30).raise_for_status()
    http.post(f"{url}/runbooks/{RUNBOOK_NAME}/publish", timeout=30).raise_for_status()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        online = http.get(f"{url}/workers", params={"state": "online"}, timeout=30).json()
        if len(online["items"]) >= len(stack.workers):
            return
        time.sleep(0.5)
    raise SystemExit("chaos: the workers did not come online in 120 s")


class Drain:
    """Whether every job has settled, asked of the API at most every 2 s."""

    def __init__(self, http, url: str, deadline: float) -> None:
        self.http, self.url, self.deadline = http, url, deadline
        self.next_ask = 0.0
        self.settled = False

    def __call__(self) -> bool:
        if time.monotonic() >= self.deadline or self.settled:
            return True
        if time.monotonic() < self.next_ask:
            return False
        self.next_ask = time.monotonic() + 2
        try:
            page = self.http.get(f"{self.url}/api/v1/jobs", timeout=30, params={
                "runbook": RUNBOOK_NAME, "status": ACTIVE, "limit": 1})
            self.settled = page.status_code == 200 and not page.json()["items"]
        except OSError:
            pass
        return self.settled


def run(args: argparse.Namespace, stack: ChaosStack) -> dict:
    http = session(TOKEN)
    began = time.time()
    stack.start()
    prepare(stack, http)
    log = HttpLog()
    params = {"steps": args.steps, "pause": args.pause}
    starter = Starter(log, stack.api_url, TOKEN, RUNBOOK_NAME, args.jobs, args.minutes * 60,
                      params, args.seed)
    drain_seconds = args.drain_minutes * 60
    starter.give_up_at = time.monotonic() + args.minutes * 60 + drain_seconds
    readers = [Reader(log, stack.api_url, TOKEN, starter,
                      None if args.seed is None else args.seed + i)
               for i in range(args.readers)]
    loop = ChaosLoop(stack, args.interval, args.stall_seconds, args.restart_after, args.kinds,
                     args.seed, running_jobs=lambda name: _running_jobs(http, stack, name))
    loop.log(f"stack up in {stack.folder}; starting {args.jobs} jobs over {args.minutes:g} min")
    for thread in [starter, *readers]:
        thread.start()
    loop.run(until=starter.done.is_set, chaos=not args.no_chaos)
    starts_done = time.time()
    loop.log(f"all starts sent; waiting for the jobs to end (at most {args.drain_minutes:g} min)")
    drain = Drain(http, stack.api_url, time.monotonic() + drain_seconds)
    loop.run(until=drain, chaos=False)
    for reader in readers:
        reader.stop.set()
    if drain.settled and _any_suspended(http, stack.api_url):
        # a job Suspended because its worker shut down is resumed when one is back: give it
        # 30 s, then wait for it to end
        grace_end = time.monotonic() + 30
        loop.run(until=lambda: time.monotonic() >= grace_end, chaos=False)
        drain.settled = False
        loop.run(until=drain, chaos=False)
    drained = time.time()
    loop.log("auditing every job through the API and the database")
    db = read_database(stack.db_url, RUNBOOK_NAME)
    ids = sorted(set(db) | set(starter.acknowledged.values()))
    api = read_api(http, stack.api_url, ids)
    windows = [(f.start, (f.end or f.start) + 10) for f in loop.faults]
    report = {
        "benchmark": "chaos",
        "config": {"jobs": args.jobs, "minutes": args.minutes, "steps": args.steps,
                   "pause": args.pause, "workers": args.workers,
                   "concurrency": args.concurrency, "fault_interval": args.fault_interval,
                   "faults": list(args.kinds) if not args.no_chaos else [],
                   "stall_seconds": args.stall_seconds, "restart_after": args.restart_after,
                   "seed": args.seed, "settings": dict(sorted(args.settings.items())),
                   "inherited_settings": stack.inherited,
                   "postgres": _pg_version(stack)},
        "seconds": {"starting": round(starts_done - began, 1),
                    "draining": round(drained - starts_done, 1),
                    "drained": drain.settled},
        "faults": {"by_kind": dict(Counter(f.kind for f in loop.faults)),
                   "log": [f.as_json(loop.origin) for f in loop.faults]},
        "starts": {"never_accepted": len(starter.never_accepted),
                   "ambiguous": starter.ambiguous},
        "audit": audit(db, api, starter.acknowledged, args.steps),
        "lost_jobs_resumed": recoveries(db, loop.faults),
        "http": log.summary(windows),
        "unexpected_exits": loop.unexpected_exits,
        "logs": scan_logs(stack.folder / "logs"),
    }
    report["settled_statuses"] = sorted(SETTLED)
    report["targets"] = targets(report)
    report["ok"] = all(t["ok"] for t in report["targets"].values())
    return report


def _running_jobs(http, stack: ChaosStack, name: str) -> int | None:
    """The jobs worker `name` runs, as the API says (None when it cannot say at once)."""
    try:
        page = http.get(f"{stack.api_url}/api/v1/workers", timeout=2)
        found = [w for w in page.json()["items"] if w["name"] == name]
        return len(found[0]["running_jobs"]) if found else 0
    except (OSError, ValueError, KeyError):
        return None


def _any_suspended(http, url: str) -> bool:
    page = http.get(f"{url}/api/v1/jobs", timeout=30, params={
        "runbook": RUNBOOK_NAME, "status": "Suspended", "limit": 1})
    return page.status_code == 200 and bool(page.json()["items"])


def _interrupted(_signum, _frame) -> None:
    raise KeyboardInterrupt  # so the stack is stopped and its folder removed


def _pg_version(stack: ChaosStack) -> str:
    out = subprocess.run([str(stack.pg_bin / "postgres"), "--version"], capture_output=True,
                         text=True, check=False)
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stack = ChaosStack(args.workers, args.concurrency, args.settings)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        report = run(args, stack)
    finally:
        stack.stop()
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
