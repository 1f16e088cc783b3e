"""Live output at scale on one `sma up`-style stack (one web process, gevent worker).

FOLLOWERS followers of GET /jobs/{id}/events over JOBS running jobs, plus WAITERS callers of
POST /runbooks/{name}/start with `wait` (their jobs go to a worker group that has no worker
until the measurement is done, so they stay open throughout, then end together). The clients
run in a child process of their own (asyncio on raw sockets, bench/liveclient.py). While they
are open: GET /api/v1/jobs and /health/ready latencies; the web process's memory per open
reader; its Redis connections (CLIENT LIST). Then: every record of every job delivered to each
of its followers, in order, and each within how long of the runbook printing it.

Prints JSON, each figure beside its target. Environment: BENCH_LIVE_FOLLOWERS (1000),
BENCH_LIVE_JOBS (10), BENCH_LIVE_WAITERS (100), BENCH_LIVE_SECONDS (the jobs' run, 60).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import redis
from common import make_runbook, ms, percentile, start, start_stack, stop_stack, ts
from liveclient import follow, start_and_wait

FOLLOWERS = int(os.environ.get("BENCH_LIVE_FOLLOWERS", "1000"))
JOBS = int(os.environ.get("BENCH_LIVE_JOBS", "10"))
WAITERS = int(os.environ.get("BENCH_LIVE_WAITERS", "100"))
SECONDS = float(os.environ.get("BENCH_LIVE_SECONDS", "60"))
INTERVAL = 0.2  # between the lines a job prints
WAIT_GROUP = "bench-wait"
LINES = int(SECONDS / INTERVAL)
RUNBOOK = (f"import time\n"
           f"for i in range({LINES}):\n"
           f"    print(i, repr(time.time()), flush=True)\n"
           f"    time.sleep({INTERVAL})\n")


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def clients(port: int, token: str, job_ids: list[str]) -> None:
    """The child process: open every follower and waiter, say when all are open, print what
    each received as JSON."""
    _raise_file_limit()

    async def run() -> dict:
        connected = [asyncio.Event() for _ in range(FOLLOWERS)]
        followers = [asyncio.create_task(follow("127.0.0.1", port, token,
                                                job_ids[i % len(job_ids)], SECONDS * 3,
                                                connected[i]))
                     for i in range(FOLLOWERS)]
        waiters = [asyncio.create_task(start_and_wait("127.0.0.1", port, token, "bench-wait",
                                                      SECONDS * 3)) for _ in range(WAITERS)]
        await asyncio.gather(*(e.wait() for e in connected))
        print(f"connected {time.time()!r}", flush=True)
        followed = await asyncio.gather(*followers)
        waited = await asyncio.gather(*waiters)
        return {"followers": [{"job": f.job_id, "code": f.status_code, "error": f.error,
                               "final": (f.final or {}).get("status"),
                               "records": f.records} for f in followed],
                "waiters": [{"code": code, "status": (job or {}).get("status"),
                             "end_time": (job or {}).get("end_time"), "answered": answered}
                            for code, job, answered in waited]}

    print(json.dumps(asyncio.run(run())), flush=True)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _web_worker(master: int) -> int:
    return int(Path(f"/proc/{master}/task/{master}/children").read_text().split()[0])


def _timings(session, url: str, path: str, n: int) -> list[float]:
    took = []
    for _ in range(n):
        began = time.perf_counter()
        session.get(f"{url}{path}").raise_for_status()
        took.append(time.perf_counter() - began)
        time.sleep(0.05)
    return took


def _delivery(result: dict, connected_at: float) -> tuple[list[float], int]:
    """Latencies of the records printed after every follower was open; and how many
    followers missed a record or got one out of order."""
    latencies, broken = [], 0
    for follower in result["followers"]:
        numbers = [int(text.split()[0]) for _, text, _ in follower["records"]]
        if (follower["code"] != 200 or follower["error"] or follower["final"] != "Completed"
                or numbers != list(range(LINES))):
            broken += 1
        for _, text, received in follower["records"]:
            printed = float(text.split()[1])
            if printed >= connected_at:
                latencies.append(received - printed)
    return latencies, broken


def main() -> None:
    _raise_file_limit()
    stack, session = start_stack(2, env={"SMA_MAX_CONNECTIONS_PER_ADDRESS": "0"})
    url = stack.api_url
    port = int(url.rsplit(":", 1)[1])
    live_worker = waiter_worker = None
    try:
        make_runbook(session, url, "bench-live", RUNBOOK, worker_group="bench-live")
        make_runbook(session, url, WAIT_GROUP, "print('done')\n", worker_group=WAIT_GROUP)
        web = _web_worker(stack.procs["web"].pid)
        _timings(session, url, "/api/v1/jobs", 20)  # warm
        rss_before = _rss_kb(web)
        # the long jobs' worker: one slot a job
        live_worker = _worker(stack, "bench-live", JOBS)
        job_ids = [start(session, url, "bench-live")["id"] for _ in range(JOBS)]
        child = subprocess.Popen([sys.executable, __file__, "--clients", str(port),
                                  session.headers["Authorization"].split()[1],
                                  ",".join(job_ids)], stdout=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        if not line.startswith("connected "):
            raise SystemExit(f"the clients did not connect: {line!r}")
        connected_at = float(line.split()[1])
        time.sleep(1)
        rss_open = _rss_kb(web)
        cpu = (time.monotonic(), _cpu_seconds(web), _cpu_seconds(child.pid))
        api = _timings(session, url, "/api/v1/jobs", 100)
        ready = _timings(session, url, "/health/ready", 100)
        wall = time.monotonic() - cpu[0]
        web_cpu = (_cpu_seconds(web) - cpu[1]) / wall
        client_cpu = (_cpu_seconds(child.pid) - cpu[2]) / wall
        load = os.getloadavg()[0]
        listing = redis.Redis.from_url(stack.redis.url).client_list()
        live = [c for c in listing if c.get("name") == f"sma-live-{web}"]
        running = session.get(f"{url}/api/v1/jobs", params={"status": "Running",
                                                            "limit": 100}).json()["items"]
        waiter_worker = _worker(stack, WAIT_GROUP, 4)  # now the waiters' jobs run
        result = json.loads(child.stdout.read())
        child.wait()
    finally:
        for proc in (waiter_worker, live_worker):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
        stop_stack(stack)
    latencies, broken = _delivery(result, connected_at)
    wakes = [w["answered"] - ts(w["end_time"]) for w in result["waiters"]
             if w["end_time"]]
    readers = FOLLOWERS + WAITERS
    print(json.dumps({
        "benchmark": "live",
        "followers": FOLLOWERS, "jobs": JOBS, "waiters": WAITERS,
        "jobs_running_while_measured": len(running),
        "api_jobs_ms": {"p50": ms(percentile(api, 50)), "p95": ms(percentile(api, 95)),
                        "floor_p95": "< 100"},
        "health_ready_ms": {"p50": ms(percentile(ready, 50)),
                            "p95": ms(percentile(ready, 95)), "floor_p95": "< 100"},
        "record_delivery_ms": {"records": len(latencies), "p50": ms(percentile(latencies, 50)),
                               "p99": ms(percentile(latencies, 99)),
                               "max": ms(max(latencies, default=float("nan"))),
                               "floor_max": "< 1000"},
        "followers_missing_or_disordered": {"value": broken, "floor": "0"},
        "waiters_completed": {"value": sum(w["status"] == "Completed"
                                           for w in result["waiters"]),
                              "floor": str(WAITERS)},
        "waiter_wake_ms": {"p50": ms(percentile(wakes, 50)), "max": ms(max(wakes, default=0))},
        "web_rss_kb_per_reader": {"value": round((rss_open - rss_before) / readers, 1),
                                  "floor": "< 100", "before_mb": round(rss_before / 1024, 1),
                                  "open_mb": round(rss_open / 1024, 1)},
        "web_redis_live_connections": {"value": len(live), "floor": "1",
                                       "channels": int(live[0]["sub"]) if live else 0},
        "redis_clients_total": len(listing),
        # what the figures above were measured beside (2 cores shared with other work)
        "web_process_cpu_while_open": round(web_cpu, 2),
        "clients_process_cpu_while_open": round(client_cpu, 2),
        "load_average_1min": round(load, 1),
    }, indent=2))


def _worker(stack, group: str, concurrency: int) -> subprocess.Popen:
    """A worker of `group` beside the stack's own, as `sma worker` starts one."""
    env = dict(os.environ, SMA_DATA_DIR=str(stack.data_dir), SMA_API_URL=stack.api_url,
               SMA_WORKER_GROUP=group)
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "smaworker", "worker", "-c",
                             str(concurrency), "--without-gossip", "--without-mingle", "-l",
                             "WARNING"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--clients"]:
        clients(int(sys.argv[2]), sys.argv[3], sys.argv[4].split(","))
    else:
        main()
