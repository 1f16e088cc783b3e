"""Server-side commands: `sma up` (everything on one machine), `sma worker`, `sma db upgrade`."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from smacommon.embedded_redis import EmbeddedRedis
from smacommon.settings import load_settings

STOP_SECONDS = 15.0


def db_upgrade(args: argparse.Namespace) -> int:
    from smacommon.migrate import upgrade

    settings = load_settings()
    upgrade(settings.effective_database_url)
    print(f"Database is up to date: {_safe_url(settings.effective_database_url)}")
    return 0


def worker(args: argparse.Namespace) -> int:
    settings = load_settings()
    group = args.group or settings.worker_group
    env = dict(os.environ, SMA_WORKER_GROUP=group)
    argv = [sys.executable, "-m", "celery", "-A", "smaworker", "worker", "-Q", group,
            "--without-gossip", "--without-mingle", "-l", "INFO"]
    if args.concurrency:
        argv += ["-c", str(args.concurrency)]
    os.execve(sys.executable, argv, env)
    return 0  # pragma: no cover - execve does not return


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def up(args: argparse.Namespace) -> int:
    overrides = {"data_dir": Path(args.data_dir)} if args.data_dir else {}
    settings = load_settings(**overrides)
    data_dir = settings.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    procs: list[tuple[str, subprocess.Popen]] = []
    redis = None
    try:
        redis_url = settings.redis_url
        if not redis_url:
            redis = EmbeddedRedis(data_dir / "redis").start()
            redis_url = redis.url
        settings = load_settings(**overrides, redis_url=redis_url)
        db_url = settings.effective_database_url

        from smacommon.migrate import upgrade

        upgrade(db_url)
        new_token = _bootstrap_token(settings)

        host = args.host
        api_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        api_url = os.environ.get("SMA_API_URL") or f"http://{api_host}:{args.port}"
        env = dict(os.environ, SMA_DATA_DIR=str(data_dir), SMA_REDIS_URL=redis_url,
                   SMA_DATABASE_URL=db_url, SMA_API_URL=api_url, PYTHONUNBUFFERED="1")
        concurrency = args.workers or max(2, os.cpu_count() or 2)
        py = sys.executable
        commands = {
            "web": [py, "-m", "gunicorn", "-k", "gthread", "--threads", "16", "-w", "1",
                    "-b", f"{host}:{args.port}", "--graceful-timeout", "5",
                    "--access-logfile", "-", "smaweb.wsgi:app"],
            "worker": [py, "-m", "celery", "-A", "smaworker", "worker", "-c", str(concurrency),
                       "-Q", settings.worker_group, "--without-gossip", "--without-mingle",
                       "-l", "INFO"],
            "beat": [py, "-m", "celery", "-A", "smaworker", "beat", "-l", "INFO",
                     "-s", str(data_dir / "celerybeat-schedule")],
        }
        for name, argv in commands.items():
            procs.append((name, subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                                 start_new_session=True)))
        _wait_healthy(api_url, procs)
        print(f"\nsma is up: {api_url}  (API {api_url}/api/v1, docs {api_url}/api/docs)")
        print(f"Data folder: {data_dir}")
        if new_token:
            print(f"Admin token (shown once, keep it): {new_token}")
        print("Press Ctrl-C to stop.\n", flush=True)
        return _supervise(procs)
    finally:
        _stop_all(procs)
        if redis is not None:
            redis.stop()


def _bootstrap_token(settings) -> str | None:
    from sqlalchemy.orm import Session

    from smacommon.db import get_engine
    from smacommon.services.tokens import ensure_admin_token

    with Session(get_engine(settings.effective_database_url)) as s, s.begin():
        return ensure_admin_token(s, settings.admin_token)


def _wait_healthy(api_url: str, procs, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"sma: the {name} process exited at start (code {proc.returncode})")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"sma: the web service did not answer at {api_url}/health in {timeout:.0f} s")


def _supervise(procs) -> int:
    stopping = False

    def _stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    while not stopping:
        for name, proc in procs:
            if proc.poll() is not None:
                print(f"sma: the {name} process exited (code {proc.returncode}); stopping",
                      file=sys.stderr)
                return 1
        time.sleep(0.5)
    print("\nsma: stopping…", flush=True)
    return 0


def _stop_all(procs) -> None:
    for _name, proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_SECONDS
    for _name, proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for _name, proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait(timeout=10)
