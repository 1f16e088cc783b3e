"""`sma up`'s processes: the web service, one worker and beat on one machine, with an
embedded Redis when no SMA_REDIS_URL is set; started in order, watched, stopped in order."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from smacli.server import check_job_user, cli_actor, safe_url
from smacommon.embedded_redis import EmbeddedRedis
from smacommon.process import tied_to_parent
from smacommon.settings import load_settings

STOP_SECONDS = 15.0
# what a worker needs beyond SMA_SHUTDOWN_GRACE_SECONDS to suspend the jobs still running
# (SIGTERM, SMA_KILL_GRACE_SECONDS, SIGKILL), record it and exit; compose's
# stop_grace_period leaves the same
SHUTDOWN_MARGIN_SECONDS = 15.0


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
        check_job_user(settings)
        self.shutdown_grace = settings.shutdown_grace_seconds
        self.data_dir = settings.data_dir.expanduser().resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.data_dir.stat().st_uid == os.geteuid():
            self.data_dir.chmod(0o700)  # the key file and the database: for sma's eyes only
        if not settings.redis_url:
            # on a socket in the data folder, with the password kept there: the children
            # (and `sma worker` on this host) find both there, no secret in their environment
            self.redis = EmbeddedRedis(self.data_dir / "redis").start()
        self.broker = self.redis.address if self.redis else safe_url(settings.redis_url)
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
            # serves the queue of SMA_WORKER_GROUP (smaworker.celery_app); -q: no banners
            # (sma up prints its own summary, and they would push it out of sight)
            "worker": [py, "-m", "celery", "-A", "smaworker", "-q", "worker", "-c",
                       str(self.concurrency), "--without-gossip", "--without-mingle", "-l",
                       "INFO"],
            "beat": [py, "-m", "celery", "-A", "smaworker", "-q", "beat", "-l", "INFO",
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


def _bootstrap_token(settings) -> str | None:
    from sqlalchemy.orm import Session

    from smacommon.db import get_engine
    from smacommon.services.audit import act_as
    from smacommon.services.tokens import ensure_admin_token

    with Session(get_engine(settings.effective_database_url)) as s, s.begin():
        return ensure_admin_token(act_as(s, cli_actor()), settings.admin_token)
