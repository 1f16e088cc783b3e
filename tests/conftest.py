"""Fixtures: real Redis, a real database, real Celery worker processes.

Services start once per test session (per pytest-xdist worker). Each xdist worker gets its
own database (a SQLite file, or a PostgreSQL database when SMA_TEST_DATABASE_URL is set) and
its own Redis database number (or its own embedded redis-server when SMA_TEST_REDIS_URL is
not set), so parallel workers never see each other's jobs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from smacommon.db import Base, dispose_engines, get_engine
from smacommon.embedded_redis import EmbeddedRedis, free_port

ADMIN_TOKEN = "sma_test_admin_token"
OUTPUT_LIMIT = 10 * 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


PWSH_MISSING = ("pwsh (PowerShell 7) is not installed on this machine; "
                "`docker build --target test -f docker/Dockerfile .` runs these tests")


_TEST_HOME = pytest.StashKey[Path]()


def pytest_configure(config):
    """The suite never reads or writes the user's home (a `sma login` there, caches): HOME
    and the XDG folders point into a fresh temporary folder for the whole run. xdist workers
    inherit their controller's; SMA_TEST_HOME says which folder that is."""
    inherited = os.environ.get("SMA_TEST_HOME")
    if hasattr(config, "workerinput") and inherited and os.environ.get("HOME") == inherited:
        return
    home = Path(tempfile.mkdtemp(prefix="sma-test-home-"))
    config.stash[_TEST_HOME] = home
    os.environ.update({"HOME": str(home), "SMA_TEST_HOME": str(home),
                       "XDG_CONFIG_HOME": str(home / ".config"),
                       "XDG_DATA_HOME": str(home / ".local" / "share"),
                       "XDG_CACHE_HOME": str(home / ".cache"),
                       "XDG_STATE_HOME": str(home / ".local" / "state")})


def pytest_unconfigure(config):
    home = config.stash.get(_TEST_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Tests marked `pwsh` need PowerShell 7: where it is absent they skip, saying so."""
    if shutil.which("pwsh") is None:
        skip = pytest.mark.skip(reason=PWSH_MISSING)
        for item in items:
            if item.get_closest_marker("pwsh") is not None:
                item.add_marker(skip)


def _xdist_index(worker_id: str) -> int:
    return int(worker_id[2:]) if worker_id.startswith("gw") else 0


def _postgres(base: str, name: str, create: bool) -> str:
    """Create (or drop) database `name` on the server of `base`; the URL of it."""
    import psycopg

    url = make_url(base.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def services(tmp_path_factory, worker_id, testrun_uid):
    """Redis and the database for this test session; sets the SMA_* environment."""
    tmp = tmp_path_factory.mktemp("sma")
    redis = None
    base_redis = os.environ.get("SMA_TEST_REDIS_URL")
    if base_redis:
        parts = urlsplit(base_redis)
        redis_url = urlunsplit(parts._replace(path=f"/{1 + _xdist_index(worker_id)}"))
    else:
        redis = EmbeddedRedis(tmp / "redis", persist=False, port=0).start()
        redis_url = redis.url
    pg_base = os.environ.get("SMA_TEST_DATABASE_URL")
    # a database per test run and xdist worker, so runs side by side never meet
    pg_name = f"sma_test_{testrun_uid[:12]}_{worker_id.replace('-', '_')}"
    db_url = (_postgres(pg_base, pg_name, create=True) if pg_base
              else f"sqlite:///{tmp / 'sma-test.db'}")
    api_port = free_port()
    # runbook environments: where jobs (perhaps another user) can reach, not pytest's 0700 tree
    env_dir = Path(tempfile.mkdtemp(prefix="sma-test-envs-"))
    env_dir.chmod(0o755)
    env = {
        "SMA_DATABASE_URL": db_url,
        "SMA_REDIS_URL": redis_url,
        "SMA_ADMIN_TOKEN": ADMIN_TOKEN,
        "SMA_DATA_DIR": str(tmp / "data"),
        "SMA_ENV_DIR": str(env_dir),
        "SMA_JOB_OUTPUT_LIMIT": str(OUTPUT_LIMIT),
        "SMA_WORKER_GROUP": "default",
        "SMA_KILL_GRACE_SECONDS": "2",
        # short enough that lost jobs and lost messages are found within the tests
        "SMA_JOB_LEASE_SECONDS": "3",
        "SMA_WORKER_HEARTBEAT_SECONDS": "1",
        "SMA_REAPER_INTERVAL_SECONDS": "0.5",
        "SMA_SCHEDULE_CHECK_SECONDS": "0.2",
        "SMA_CONFIG_CACHE_SECONDS": "0",  # a test never sees an earlier test's setting
        "SMA_REQUEUE_NEW_AFTER_SECONDS": "2",
        # jobs call back into a real HTTP server of the web app (started below)
        "SMA_API_URL": f"http://127.0.0.1:{api_port}",
    }
    os.environ.update(env)
    _reset_settings()
    import redis as redis_lib

    redis_lib.Redis.from_url(redis_url).flushdb()
    from smacommon.migrate import upgrade

    upgrade(db_url)
    from werkzeug.serving import make_server

    from smaweb import create_app

    server = make_server("127.0.0.1", api_port, create_app(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"database_url": db_url, "redis_url": redis_url, "env": env, "tmp": tmp,
           "api_url": env["SMA_API_URL"], "web_app": server.app}
    server.shutdown()
    dispose_engines()
    if pg_base:
        _postgres(pg_base, pg_name, create=False)
    if redis is not None:
        redis.stop()
    shutil.rmtree(env_dir, ignore_errors=True)
    from smaworker.jobsroot import jobs_root_for

    shutil.rmtree(jobs_root_for(tmp / "data"), ignore_errors=True)  # the workers' job folders


def _reset_settings() -> None:
    from smacommon.queue import reset_producer
    from smacommon.settings import get_settings

    get_settings.cache_clear()
    reset_producer()


@pytest.fixture(autouse=True)
def clean_db(request, services):
    """A fresh database for every test: every row of every table goes."""
    engine = get_engine(services["database_url"])
    if engine.dialect.name == "postgresql":
        # Session-wide workers and beats keep writing (heartbeats, reaper) while
        # TRUNCATE takes its locks table by table, which can deadlock with them.
        # A short lock_timeout makes TRUNCATE give way well before PostgreSQL's
        # deadlock check (1 s) could pick a worker's transaction as the victim;
        # it rolled back whole, so it simply tries again.
        from sqlalchemy.exc import OperationalError

        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        for attempt in range(50):
            try:
                with engine.begin() as conn:
                    conn.execute(text("SET LOCAL lock_timeout = '200ms'"))
                    conn.execute(text(f"TRUNCATE {names} CASCADE"))
                break
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) not in ("40P01", "55P03") or attempt == 49:
                    raise
                time.sleep(0.05)
    else:
        with engine.begin() as conn:
            conn.execute(text("UPDATE runbooks SET published_version_id = NULL"))
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
    yield


@pytest.fixture
def settings(services):
    from smacommon.settings import get_settings

    return get_settings()


@pytest.fixture
def app(services):
    from smaweb import create_app

    return create_app({"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


class Api:
    """The test client with the admin token, and JSON helpers."""

    def __init__(self, client, token: str = ADMIN_TOKEN) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path, **kw):
        return self.client.get(path, headers=self.headers, **kw)

    def post(self, path, json=None, **kw):
        return self.client.post(path, json=json, headers=self.headers, **kw)

    def put(self, path, json=None, **kw):
        return self.client.put(path, json=json, headers=self.headers, **kw)

    def patch(self, path, json=None, **kw):
        return self.client.patch(path, json=json, headers=self.headers, **kw)

    def delete(self, path, **kw):
        return self.client.delete(path, headers=self.headers, **kw)

    def create_runbook(self, name=None, content="print('hi')\n", runbook_type="python",
                       publish=True, **fields):
        name = name or f"rb-{uuid.uuid4().hex[:8]}"
        resp = self.post("/api/v1/runbooks", json={"name": name, "runbook_type": runbook_type,
                                                   "content": content, **fields})
        assert resp.status_code == 201, resp.get_json()
        if publish:
            pub = self.post(f"/api/v1/runbooks/{name}/publish")
            assert pub.status_code == 201, pub.get_json()
        return resp.get_json()

    def start(self, runbook, parameters=None, **fields):
        resp = self.post(f"/api/v1/runbooks/{runbook}/start",
                         json={"parameters": parameters or {}, **fields})
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    def wait(self, job_id, timeout=60.0, statuses=("Completed", "Failed", "Stopped",
                                                    "Suspended")):
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = self.get(f"/api/v1/jobs/{job_id}").get_json()
            if job["status"] in statuses:
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")

    def records(self, job_id, **query):
        items, after = [], 0
        while True:
            page = self.get(f"/api/v1/jobs/{job_id}/streams",
                            query_string={**query, "after_seq": after, "limit": 10000}).get_json()
            items += page["items"]
            if page["next_after_seq"] is None:
                return items
            after = page["next_after_seq"]

    def run(self, content, parameters=None, runbook_type="python", timeout=60.0, **fields):
        """Create, publish, start and wait: the finished job."""
        rb = self.create_runbook(content=content, runbook_type=runbook_type, **fields)
        job = self.start(rb["name"], parameters)
        return self.wait(job["id"], timeout=timeout)


@pytest.fixture
def api(client):
    return Api(client)


class _Process:
    """A real child process in its own process group, ended (with the group) by stop()."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None

    def spawn(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        """kill -9 of the whole process group, as when its host dies."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        end_group(self.proc, timeout)
        self._log.close()
        self.proc = None


def end_group(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """End `proc`'s process group: SIGTERM, and SIGKILL for what is left after `timeout`."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(timeout=timeout)


class BeatProcess(_Process):
    """A real `celery -A smaworker beat` process: the scheduler and the reaper."""

    def __init__(self, env: dict[str, str], folder: Path, name: str = "beat") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / f"{name}.log"
        self.env = {**os.environ, **env}
        self.argv = [sys.executable, "-m", "celery", "-A", "smaworker", "beat", "-l", "INFO",
                     "-s", str(folder / f"{name}-schedule")]

    def start(self) -> BeatProcess:
        self.spawn()
        return self


class WorkerProcess(_Process):
    """A real `celery -A smaworker worker` process in its own process group."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 2,
                 group: str = "default", name: str | None = None) -> None:
        self.name = name or f"test-worker-{uuid.uuid4().hex[:6]}"
        self.group = group
        self.log_path = log_path
        self.env = {**os.environ, **env, "SMA_WORKER_NAME": self.name,
                    "SMA_WORKER_GROUP": group}
        self.argv = [sys.executable, "-m", "celery", "-A", "smaworker", "worker",
                     "-c", str(concurrency), "-P", "prefork", "--without-gossip",
                     "--without-mingle", "--without-heartbeat", "-l", "INFO", "-n",
                     f"{self.name}@%h"]
        self.proc: subprocess.Popen | None = None

    def start(self, database_url: str, timeout: float = 30.0) -> WorkerProcess:
        self.spawn()
        engine = get_engine(database_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-3000:]}")
            with engine.connect() as conn:
                found = conn.execute(text("SELECT 1 FROM workers WHERE name = :n"),
                                     {"n": self.name}).first()
            if found:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker did not register: {self.log_path.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def worker_process(services):
    """One real worker serving the `default` group for the whole session."""
    proc = WorkerProcess(services["env"], services["tmp"] / "worker.log").start(
        services["database_url"])
    yield proc
    proc.stop()


@pytest.fixture
def worker(worker_process, clean_db, services):
    """Use in a test that needs its jobs run: waits until the worker has registered again
    after the clean (its heartbeat does that within a second)."""
    assert worker_process.proc.poll() is None, worker_process.log_path.read_text()[-3000:]
    engine = get_engine(services["database_url"])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(text("SELECT 1 FROM workers WHERE name = :n"),
                            {"n": worker_process.name}).first():
                return worker_process
        time.sleep(0.05)
    raise AssertionError("the session worker did not register again")


@pytest.fixture
def processes(services):
    """Start more workers and beats in a test; all of them end with it."""
    started: list[_Process] = []

    class Starter:
        def worker(self, group: str, concurrency: int = 2, env: dict | None = None,
                   name: str | None = None) -> WorkerProcess:
            proc = WorkerProcess({**services["env"], **(env or {})},
                                 services["tmp"] / f"worker-{uuid.uuid4().hex[:6]}.log",
                                 concurrency=concurrency, group=group, name=name)
            started.append(proc)
            return proc.start(services["database_url"])

        def beat(self, env: dict | None = None) -> BeatProcess:
            proc = BeatProcess({**services["env"], **(env or {})},
                               services["tmp"] / f"beat-{uuid.uuid4().hex[:6]}")
            started.append(proc)
            return proc.start()

    yield Starter()
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def job_tmp():
    """A folder both the tests and jobs can write (jobs may run as an unprivileged user)."""
    import shutil
    import tempfile

    # not in /tmp: a job has a /tmp of its own (smaworker/sandbox.py)
    path = Path(tempfile.mkdtemp(prefix="sma-test-", dir="/var/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def processes_with_arg(arg: str) -> list[int]:
    """Live (not zombie) processes whose command line has `arg`: pids a job writes are its own
    namespace's, so tests find its processes by a unique argument instead."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as fh:
                state = fh.read().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if arg.encode() in argv and state != "Z":
            found.append(int(entry))
    return found


def wait_for(predicate, timeout: float = 30.0, what: str = "condition", every: float = 0.05):
    """Poll `predicate` until it returns something true (returned), or fail after `timeout`
    seconds saying `what` was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s")


def wait_gone(arg: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while processes_with_arg(arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes with {arg!r} still run: {processes_with_arg(arg)}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def package_index(tmp_path_factory):
    """A real package index (pypiserver) on a free port, empty until a test adds wheels
    (tests/pkgindex.py); one per test session and xdist worker."""
    from tests.pkgindex import PackageIndex

    folder = tmp_path_factory.mktemp("pkgindex")
    index = PackageIndex(folder / "packages", folder / "pypiserver.log").start()
    yield index
    index.stop()
