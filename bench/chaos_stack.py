"""The chaos benchmark's own stack: PostgreSQL and Redis servers in a temporary folder, the
web service, N workers and beat, each process in its own process group so a fault reaches
exactly one of them.

Every process is started from the main thread: the parent-death signal that ties them to
the benchmark (smacommon.process.tied_to_parent) fires when the *thread* that started a
process ends, not the process.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis
from cryptography.fernet import Fernet

from smacommon.embedded_redis import free_port
from smacommon.process import tied_to_parent

REPO = Path(__file__).resolve().parent.parent
TOKEN = "sma_chaos_admin_token_" + "0" * 16
# what the benchmark sets itself; any other SMA_* of the caller's environment passes through
_OWN = {"SMA_DATABASE_URL", "SMA_REDIS_URL", "SMA_DATA_DIR", "SMA_API_URL", "SMA_ADMIN_TOKEN",
        "SMA_ENCRYPTION_KEYS", "SMA_SECRET_KEY", "SMA_WORKER_NAME", "SMA_LOG_FORMAT"}


class SetupError(SystemExit):
    """The machine lacks what the benchmark needs (said in one line, exit code 2)."""

    def __init__(self, message: str) -> None:
        print(f"chaos: {message}", file=sys.stderr)
        super().__init__(2)


def find_postgres() -> Path:
    """The newest PostgreSQL bin folder with initdb, pg_ctl and postgres."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if not found and shutil.which("initdb"):
        found = [Path(shutil.which("initdb")).parent]
    found = [d for d in found if all((d / b).exists() for b in ("pg_ctl", "postgres"))]
    if not found:
        raise SetupError("PostgreSQL server binaries not found (initdb, pg_ctl and postgres "
                         "under /usr/lib/postgresql/*/bin or on PATH); install them first, "
                         "e.g. apt-get install postgresql")
    return max(found, key=lambda d: [int(x) for x in d.parent.name.split(".") if x.isdigit()])


def _pg_user() -> pwd.struct_passwd | None:
    """Who runs PostgreSQL: this user, or `postgres` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(os.environ.get("SMA_CHAOS_PG_USER", "postgres"))
    except KeyError:
        raise SetupError("running as root, PostgreSQL needs an unprivileged user: create "
                         "'postgres' (the postgresql package does) or name one in "
                         "SMA_CHAOS_PG_USER") from None


class Proc:
    """One service process in its own session (process group = its pid)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path,
                 user: pwd.struct_passwd | None = None) -> None:
        self.name, self.argv, self.env, self.log, self.user = name, argv, env, log, user
        self.proc: subprocess.Popen | None = None
        self.expected_down = False  # the chaos loop ended it on purpose
        self.starts = 0

    def start(self) -> None:
        argv, options = tied_to_parent(self.argv, signal.SIGTERM)
        if self.user is not None:
            options.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, **options)
        self.expected_down = False
        self.starts += 1

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the whole process group and reap the leader."""
        self.expected_down = True
        self.signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        self.expected_down = True
        self.signal_group(signal.SIGCONT)  # a stalled one must run to hear SIGTERM
        self.signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.signal_group(signal.SIGKILL)  # what it left behind in its group


class ChaosStack:
    """PostgreSQL, Redis, the web service, `workers` workers and beat in `folder`."""

    def __init__(self, workers: int, concurrency: int, settings: dict[str, str]) -> None:
        self.pg_bin = find_postgres()
        if not shutil.which("redis-server"):
            raise SetupError("redis-server not found on PATH; install it first "
                             "(apt-get install redis-server)")
        self.pg_user = _pg_user()
        self.folder = Path(tempfile.mkdtemp(prefix="sma-chaos-"))
        self.folder.chmod(0o711)  # PostgreSQL's user passes through to its own folder
        self.pg_port, self.redis_port, self.web_port = free_port(), free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{self.web_port}"
        self.db_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.pg_port}/postgres"
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMA_") or k not in _OWN}
        # named in the JSON (not their values: a URL may hold a password)
        self.inherited = sorted(k for k in env if k.startswith("SMA_") and k not in settings
                                and k != "SMA_BENCH_KEEP")
        env.update(settings)
        env.update(
            SMA_DATABASE_URL=self.db_url, SMA_REDIS_URL=self.redis_url,
            SMA_DATA_DIR=str(self.folder / "data"), SMA_API_URL=self.api_url,
            SMA_ADMIN_TOKEN=TOKEN, SMA_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
            SMA_SECRET_KEY=secrets.token_hex(32), SMA_LOG_FORMAT="text",
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        self.env = env
        logs = self.folder / "logs"
        logs.mkdir()
        pg_dir = self.folder / "pg"
        pg_dir.mkdir(mode=0o700)
        if self.pg_user is not None:
            os.chown(pg_dir, self.pg_user.pw_uid, self.pg_user.pw_gid)
        self.pg_data = pg_dir / "data"
        self.pg_log = pg_dir / "postgres.log"
        self.postgres = Proc("postgres", [
            str(self.pg_bin / "postgres"), "-D", str(self.pg_data), "-p", str(self.pg_port),
            "-k", str(pg_dir), "-c", "listen_addresses=127.0.0.1"],
            {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}, self.pg_log, self.pg_user)
        (self.folder / "redis").mkdir()
        self.redis = Proc("redis", [
            shutil.which("redis-server"), "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.folder / "redis")],
            env, logs / "redis.log")
        py = sys.executable
        from smaweb import gunicorn_conf

        self.web = Proc("web", gunicorn_conf.command(f"127.0.0.1:{self.web_port}",
                                                     graceful_timeout=5), env, logs / "web.log")
        self.workers = [
            Proc(f"worker-{i}", [py, "-m", "smacli.main", "worker", "--concurrency",
                                 str(concurrency)],
                 dict(env, SMA_WORKER_NAME=f"chaos-worker-{i}"), logs / f"worker-{i}.log")
            for i in range(1, workers + 1)]
        self.beat = Proc("beat", [py, "-m", "celery", "-A", "smaworker", "beat", "-l", "INFO",
                                  "-s", str(self.folder / "celerybeat-schedule")],
                         env, logs / "beat.log")

    @property
    def services(self) -> list[Proc]:
        return [self.web, *self.workers, self.beat]

    def start(self) -> None:
        """initdb, then every server and service; returns when the web service answers."""
        self._pg_run([str(self.pg_bin / "initdb"), "-D", str(self.pg_data), "-U", "postgres",
                      "--auth=trust", "-E", "UTF8", "--no-sync"])
        self.start_postgres()
        self.start_redis()
        from smacommon.migrate import upgrade

        upgrade(self.db_url)
        for proc in self.services:
            proc.start()
        self.wait_web()

    def _pg_run(self, argv: list[str]) -> None:
        options = {} if self.pg_user is None else dict(
            user=self.pg_user.pw_uid, group=self.pg_user.pw_gid, extra_groups=[])
        with open(self.pg_log, "ab") as out:
            subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=True,
                           cwd=self.pg_data.parent, **options)

    def start_postgres(self, timeout: float = 60.0) -> None:
        self.postgres.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.postgres.alive():
                raise SystemExit(f"chaos: PostgreSQL exited; see {self.pg_log}")
            ready = subprocess.run([str(self.pg_bin / "pg_isready"), "-q", "-h", "127.0.0.1",
                                    "-p", str(self.pg_port)], check=False)
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise SystemExit(f"chaos: PostgreSQL did not start in {timeout:.0f} s")

    def stop_postgres_immediate(self) -> None:
        """`pg_ctl stop -m immediate`: no checkpoint, connections cut, recovery at start."""
        self.postgres.expected_down = True
        self._pg_run([str(self.pg_bin / "pg_ctl"), "stop", "-D", str(self.pg_data),
                      "-m", "immediate", "-w"])
        self.postgres.proc.wait(timeout=30)

    def start_redis(self, timeout: float = 20.0) -> None:
        self.redis.start()
        client = redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise SystemExit("chaos: Redis did not start")

    def wait_web(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"chaos: the web service did not answer in {timeout:.0f} s; "
                         f"see {self.folder / 'logs' / 'web.log'}")

    def stop(self) -> None:
        """Stop everything; remove the folder unless SMA_BENCH_KEEP=1."""
        for proc in self.services:
            proc.stop()
        self.redis.stop()
        if self.postgres.alive():
            self.postgres.expected_down = True
            try:
                self._pg_run([str(self.pg_bin / "pg_ctl"), "stop", "-D", str(self.pg_data),
                              "-m", "fast", "-w"])
            except subprocess.CalledProcessError:
                self.postgres.kill()
            self.postgres.stop()
        if os.environ.get("SMA_BENCH_KEEP"):
            print(f"chaos: kept {self.folder} (logs in logs/, pg/postgres.log)", file=sys.stderr)
        else:
            shutil.rmtree(self.folder, ignore_errors=True)
