"""Server-side commands: `sma up` (everything on one machine), `sma worker`, `sma db upgrade`."""

from __future__ import annotations

import argparse
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from smacommon.embedded_redis import EmbeddedRedis
from smacommon.process import tied_to_parent
from smacommon.settings import load_settings

STOP_SECONDS = 15.0
# what a worker needs beyond SMA_SHUTDOWN_GRACE_SECONDS to suspend the jobs still running
# (SIGTERM, SMA_KILL_GRACE_SECONDS, SIGKILL), record it and exit; compose's
# stop_grace_period leaves the same
SHUTDOWN_MARGIN_SECONDS = 15.0


def db_upgrade(args: argparse.Namespace) -> int:
    from smacommon.migrate import upgrade

    settings = load_settings()
    upgrade(settings.effective_database_url)
    print(f"Database is up to date: {_safe_url(settings.effective_database_url)}")
    return 0


def token_create(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from smacommon.db import get_engine
    from smacommon.migrate import upgrade
    from smacommon.services.audit import act_as
    from smacommon.services.tokens import create_token

    settings = load_settings()
    upgrade(settings.effective_database_url)
    if args.expires_in_days is not None and args.expires_in_days < 1:
        print("sma: --expires-in-days must be 1 or more", file=sys.stderr)
        return 2
    with Session(get_engine(settings.effective_database_url)) as s, s.begin():
        token, secret = create_token(act_as(s, cli_actor()), args.name, args.role,
                                     args.expires_in_days)
        name, role = token.name, token.role
    print(f"Token {name!r} ({role}), shown once: {secret}")
    return 0


def keys_rotate(args: argparse.Namespace) -> int:
    from smacommon.crypto import get_crypto
    from smacommon.db import get_engine
    from smacommon.services.assets import rotate_secrets

    settings = load_settings()
    count = rotate_secrets(get_engine(settings.effective_database_url), get_crypto(settings),
                           cli_actor())
    print(f"Re-encrypted {count} secret(s) under the first key. The other keys can be removed "
          "from SMA_ENCRYPTION_KEYS now.")
    return 0


def cli_actor():
    """Who runs a command on the server, for the audit: the OS user, and this host."""
    import getpass
    import socket

    from smacommon.services.audit import Actor

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a uid with no name (containers)
        user = str(os.getuid())
    return Actor(f"cli:{user}", "cli", socket.gethostname())


def worker(args: argparse.Namespace) -> int:
    from smacommon.queue import require_broker
    from smacommon.workergroups import validate_worker_group

    settings = load_settings()
    group = validate_worker_group(args.group or settings.worker_group)
    _check_job_user(settings)
    require_broker(settings)  # here, as one line, rather than as Celery's traceback
    # the worker consumes its group's queue (smaworker.celery_app), named from SMA_WORKER_GROUP
    env = dict(os.environ, SMA_WORKER_GROUP=group)
    argv = [sys.executable, "-m", "celery", "-A", "smaworker", "worker", "--without-gossip",
            "--without-mingle", "-l", "INFO"]
    if args.concurrency:
        argv += ["-c", str(args.concurrency)]
    os.execve(sys.executable, argv, env)
    return 0  # pragma: no cover - execve does not return


def _check_job_user(settings) -> None:
    """Who jobs will run as; a missing SMA_JOB_USER is a ConfigurationError, before any
    process starts."""
    from smaworker.sandbox import build_sandbox

    build_sandbox(settings)


def _safe_url(url: str) -> str:
    """`url` without its credentials (in the user part or a password= query parameter)."""
    url = re.sub(r"([?&]password=)[^&]*", r"\1***", url)
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


class Stack:
    """The web service, one worker and beat on one machine, with an embedded Redis if needed."""

    def __init__(self, data_dir: Path | None = None, host: str = "127.0.0.1", port: int = 8080,
                 concurrency: int | None = None, env: dict[str, str] | None = None,
                 output=None, tls_cert: str | None = None, tls_key: str | None = None) -> None:
        if bool(tls_cert) != bool(tls_key):
            raise SystemExit("sma: --tls-cert and --tls-key go together")
        for path in (tls_cert, tls_key):
            if path and not Path(path).is_file():
                raise SystemExit(f"sma: {path} is not a readable file")
        self.tls = (str(Path(tls_cert).resolve()), str(Path(tls_key).resolve())) \
            if tls_cert else None
        self.overrides = {"data_dir": Path(data_dir)} if data_dir else {}
        self.host = host
        self.port = port
        self.concurrency = concurrency or max(2, os.cpu_count() or 2)
        self.extra_env = env or {}
        self.output = output  # where children write (None: inherit the terminal)
        self.procs: dict[str, subprocess.Popen] = {}
        self.redis: EmbeddedRedis | None = None
        self.broker = ""  # where the broker listens, without its password
        self.new_token: str | None = None
        self.api_url = ""
        self.data_dir = Path()
        self.shutdown_grace = 0.0
        self.hurried = False

    def start(self) -> Stack:
        os.environ.update(self.extra_env)
        settings = load_settings(**self.overrides)
        _check_job_user(settings)
        self.shutdown_grace = settings.shutdown_grace_seconds
        self.data_dir = settings.data_dir.expanduser().resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.data_dir.stat().st_uid == os.geteuid():
            self.data_dir.chmod(0o700)  # the key file and the database: for sma's eyes only
        if not settings.redis_url:
            # on a socket in the data folder, with the password kept there: the children
            # (and `sma worker` on this host) find both there, no secret in their environment
            self.redis = EmbeddedRedis(self.data_dir / "redis").start()
        self.broker = self.redis.address if self.redis else _safe_url(settings.redis_url)
        db_url = settings.effective_database_url

        from smacommon.migrate import upgrade
        from smaweb import gunicorn_conf

        upgrade(db_url)
        self.new_token = _bootstrap_token(settings)
        api_host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        scheme = "https" if self.tls else "http"
        self.api_url = os.environ.get("SMA_API_URL") or f"{scheme}://{api_host}:{self.port}"
        env = dict(os.environ, SMA_DATA_DIR=str(self.data_dir),
                   SMA_DATABASE_URL=db_url, SMA_API_URL=self.api_url, PYTHONUNBUFFERED="1",
                   SMA_LOG_FORMAT=os.environ.get("SMA_LOG_FORMAT", "text"))  # for people
        if self.tls and not env.get("SMA_API_CA_FILE"):
            env["SMA_API_CA_FILE"] = self.tls[0]  # jobs trust the service's own certificate
        py = sys.executable
        commands = {
            "web": gunicorn_conf.command(f"{self.host}:{self.port}", tls=self.tls,
                                         graceful_timeout=5),
            # serves the queue of SMA_WORKER_GROUP (smaworker.celery_app)
            "worker": [py, "-m", "celery", "-A", "smaworker", "worker", "-c",
                       str(self.concurrency), "--without-gossip", "--without-mingle", "-l",
                       "INFO"],
            "beat": [py, "-m", "celery", "-A", "smaworker", "beat", "-l", "INFO",
                     "-s", str(self.data_dir / "celerybeat-schedule")],
        }
        for name, argv in commands.items():
            # each in its own session (Ctrl-C reaches only `sma up`, which stops them in
            # order), and each ended by SIGTERM should `sma up` itself be killed
            argv, options = tied_to_parent(argv, signal.SIGTERM)
            self.procs[name] = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=self.output,
                stderr=subprocess.STDOUT if self.output else None, start_new_session=True,
                **options)
        self._wait_healthy()
        return self

    def _wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            try:
                context = ssl._create_unverified_context() if self.tls else None  # our own cert
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=1,
                                            context=context) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"sma: the web service did not answer at {self.api_url}/health "
                         f"in {timeout:.0f} s")

    def check(self) -> None:
        """Raise SystemExit when one of the processes has ended."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"sma: the {name} process exited (code {proc.returncode})")

    def keep_broker(self) -> None:
        """Start the embedded Redis again should it have ended (killed, out of memory): same
        socket, password and data; the worker, beat and web service reconnect on their own."""
        if self.redis is None or self.redis.proc is None or self.redis.proc.poll() is None:
            return
        print(f"sma: the embedded Redis exited (code {self.redis.proc.returncode}); "
              "starting it again", flush=True)
        self.redis.start()

    def stop(self) -> None:
        """The worker first: it takes no more jobs, lets the running ones end for
        SMA_SHUTDOWN_GRACE_SECONDS and suspends the rest; then beat and the web service
        (which the jobs may call until then). `hurry()` ends everything at once."""
        self._terminate(["worker"], self.shutdown_grace + SHUTDOWN_MARGIN_SECONDS)
        self._terminate(["beat", "web"], STOP_SECONDS)
        procs = list(self.procs.values())
        for proc in procs:
            _signal_group(proc, signal.SIGKILL)  # whatever they left behind
            if proc.poll() is None:
                proc.wait(timeout=10)
        self.procs.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def hurry(self) -> None:
        """Stop waiting: kill every process group now (a second Ctrl-C). Jobs still running
        are left to the reaper, as after a lost worker."""
        self.hurried = True

    def _terminate(self, names: list[str], timeout: float) -> None:
        """SIGTERM to the main process of each (never its group: a Celery worker's pool
        processes and a job's processes are the main process's to end), and wait."""
        procs = [self.procs[name] for name in names if name in self.procs]
        for proc in procs:
            if proc.poll() is None and not self.hurried:
                try:
                    proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        while not self.hurried and time.monotonic() < deadline and \
                any(proc.poll() is None for proc in procs):
            time.sleep(0.1)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def up(args: argparse.Namespace) -> int:
    stack = Stack(args.data_dir, args.host, args.port, args.workers,
                  tls_cert=args.tls_cert, tls_key=args.tls_key)
    stopping = False

    def _stop(_signum, _frame):
        nonlocal stopping
        if stopping:
            stack.hurry()
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        stack.start()
        url = stack.api_url
        print(f"\nsma is up: {url}  (API {url}/api/v1, docs {url}/api/docs)")
        print(f"Data folder: {stack.data_dir}")
        print(f"Broker: {stack.broker}" + (
            f"  (password in {stack.redis.folder / 'password'})" if stack.redis else ""))
        if stack.new_token:
            print(f"Admin token (shown once, keep it): {stack.new_token}")
        print("Press Ctrl-C to stop.\n", flush=True)
        signal.signal(signal.SIGINT, _stop)
        while not stopping:
            stack.check()
            stack.keep_broker()
            time.sleep(0.5)
        print(f"\nsma: stopping… running jobs have {stack.shutdown_grace:g} s to end, then are "
              "suspended (Ctrl-C again ends everything now)", flush=True)
        return 0
    finally:
        stack.stop()


def _bootstrap_token(settings) -> str | None:
    from sqlalchemy.orm import Session

    from smacommon.db import get_engine
    from smacommon.services.audit import act_as
    from smacommon.services.tokens import ensure_admin_token

    with Session(get_engine(settings.effective_database_url)) as s, s.begin():
        return ensure_admin_token(act_as(s, cli_actor()), settings.admin_token)
