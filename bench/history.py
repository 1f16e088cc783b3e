"""Reading history at scale on PostgreSQL: the jobs list and a big job's records.

Creates its own database (sma_bench_history_<random> on HISTORY_PG, by default
postgresql://postgres@127.0.0.1:5432; dropped at the end), migrates it, generates
HISTORY_JOBS jobs (1,000,000) and HISTORY_ROWS stream records (20,000,000; the newest job has
HISTORY_BIG_LINES of them, 1,000,000) inside PostgreSQL (bench/history_data.py), then starts
the web service as `sma up` does (gunicorn on a free port) and times, HISTORY_REPEAT times
each (30), GET /api/v1/jobs (first page, pages 2,000 / 10,000 / 19,000 by cursor, by runbook
and by status, first to last page) and GET /api/v1/jobs/{id}/streams of the big job (start,
middle, end; limit 1,000 and 10,000). Prints JSON: p50/p95 of each beside the target (30 ms)
(and the web process's CPU a request, steadier than the time on a noisy machine) and its
floors measured in the same run (the SQL alone, EXPLAIN ANALYZE; an HTTP request that
reads nothing, GET /health), the plan of each query, and whether it seeks (no Seq Scan,
no Sort). No PostgreSQL reachable: one JSON line saying so, exit 0.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


JOBS = int(os.environ.get("HISTORY_JOBS", "1000000"))
ROWS = int(os.environ.get("HISTORY_ROWS", str(JOBS * 20)))
BIG_LINES = int(os.environ.get("HISTORY_BIG_LINES", str(max(1, ROWS // 20))))
REPEAT = int(os.environ.get("HISTORY_REPEAT", "30"))
SERVER = os.environ.get("HISTORY_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_MS = 30.0
PAGE = 50  # the jobs list's default limit
TOKEN = "sma_bench_history_" + secrets.token_hex(8)


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(SERVER, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def main() -> dict:
    import psycopg

    try:
        admin("SELECT 1")
    except psycopg.OperationalError as exc:
        return {"benchmark": "history", "skipped": f"no PostgreSQL at {SERVER}: "
                f"{str(exc).strip().splitlines()[0]} (set HISTORY_PG to a server's URL)"}
    name = f"sma_bench_history_{secrets.token_hex(4)}"
    admin(f"CREATE DATABASE {name}")
    folder = Path(tempfile.mkdtemp(prefix="sma-bench-history-"))
    try:
        return run(SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://",
                                                    1) + f"/{name}", folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run(url: str, folder: Path) -> dict:
    from bench.history_data import generate
    from bench.history_probe import Probe
    from smacommon.db import get_engine
    from smacommon.migrate import upgrade

    upgrade(url)
    engine = get_engine(url)
    started = time.perf_counter()
    data = generate(engine, JOBS, ROWS, BIG_LINES)
    data["seconds"]["total"] = round(time.perf_counter() - started, 1)
    print(json.dumps({"generated": data}), file=sys.stderr, flush=True)
    web_proc = web(url, folder)
    with web_proc as base:
        probe = Probe(engine, base, TOKEN, REPEAT, web_pid=_child(web_proc.proc.pid))
        results = {"floor_health": probe.floor()}
        results.update(probe.job_pages(data["runbooks"], PAGE))
        results.update(probe.stream_pages(data["big_job"], BIG_LINES))
    cases = {k: v for k, v in results.items() if k != "floor_health"}
    worst = max(cases.values(), key=lambda c: c["p95_ms"])
    return {
        "benchmark": "history", "database": "postgresql",
        "machine": {"cpus": os.cpu_count()}, "commit": _commit(), "data": data,
        "target_p95_ms": TARGET_MS,
        "all_under_target": all(c["p95_ms"] < TARGET_MS for c in cases.values()),
        "all_seek": all(c["plan_seeks"] for c in cases.values()),
        "worst": {"case": next(k for k, v in cases.items() if v is worst),
                  "p95_ms": worst["p95_ms"]},
        "results": results,
    }


class web:
    """The web service as `sma up` starts it (smaweb.gunicorn_conf), one process."""

    def __init__(self, url: str, folder: Path) -> None:
        from smacommon.embedded_redis import free_port

        self.url, self.folder, self.port = url, folder, free_port()

    def __enter__(self) -> str:
        from smaweb import gunicorn_conf

        env = dict(os.environ, SMA_DATABASE_URL=self.url, SMA_ADMIN_TOKEN=TOKEN,
                   SMA_DATA_DIR=str(self.folder), SMA_LOG_LEVEL="WARNING",
                   PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        self.log = open(self.folder / "web.log", "wb")  # noqa: SIM115 - closed on __exit__
        self.proc = subprocess.Popen(gunicorn_conf.command(f"127.0.0.1:{self.port}"), env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/health", timeout=5).ok:
                    return base
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.__exit__()
        raise SystemExit("the web service did not start: "
                         + (self.folder / "web.log").read_text()[-2000:])

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _child(pid: int) -> int | None:
    """The one child of process `pid` (gunicorn's worker process), None if none is seen."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    return int(entry.name)
            except (OSError, ValueError, IndexError):
                continue
    return None


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
