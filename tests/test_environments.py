"""Runbooks with requirements run in environments of their own (smaworker.environments):
built once per pinned set with uv from a real package index, shared by identical sets,
isolated from sma's own packages, read-only to the jobs that run in them, removed once idle."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from smacommon.db import get_engine
from smacommon.errors import ConfigurationError
from smacommon.models import Runbook
from smacommon.requirements import environment_key
from smacommon.services.audit import Actor, act_as
from smacommon.services.jobs import start_job
from smacommon.settings import load_settings
from smaworker.engines.base import RUNTIME_DIR
from smaworker.envbuild import BuildError, find_uv
from smaworker.environments import LAST_USED, Environments
from smaworker.envroot import FALLBACK_ROOT, environment_root, python_version
from smaworker.sandbox import CLEAN_PATH, Sandbox, accessible
from tests.conftest import WorkerProcess, _reset_settings, wait_for

# the jobs' interpreter (SMA_PYTHON of the workers here): one the job user can run
PYTHON = shutil.which("python3", path=CLEAN_PATH)
GROUP = f"envs-{uuid.uuid4().hex[:8]}"
TESTER = Actor("token:test", "api")
ROOT_WITH_JOB_USER = os.geteuid() == 0  # jobs then run as SMA_JOB_USER, not as the worker

pytestmark = pytest.mark.skipif(PYTHON is None, reason="no python3 on the system PATH")


def _fresh_root() -> Path:
    """A folder for environments the job user can reach: pytest's own tree is 0700."""
    root = Path(tempfile.mkdtemp(prefix="sma-test-envs-"))
    root.chmod(0o755)
    return root


@pytest.fixture
def env_root():
    root = _fresh_root()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def module_env_root():
    root = _fresh_root()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def env_worker(services, package_index, module_env_root):
    """A real worker of its own group, building environments from the test index."""
    proc = WorkerProcess({**services["env"], "SMA_ENV_DIR": str(module_env_root),
                          "SMA_PIP_INDEX_URL": package_index.simple, "SMA_PYTHON": PYTHON},
                         services["tmp"] / f"worker-{GROUP}.log", concurrency=2,
                         group=GROUP).start(services["database_url"])
    yield proc
    proc.stop()


@pytest.fixture
def envs(env_worker, clean_db, services):
    """The module's worker, registered again after the test's clean database."""
    engine = get_engine(services["database_url"])
    wait_for(lambda: env_worker.proc.poll() is not None or _registered(engine, env_worker),
             timeout=15, what="the environments worker registered again")
    assert env_worker.proc.poll() is None, env_worker.log_path.read_text()[-3000:]
    return env_worker


def _registered(engine, proc: WorkerProcess) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM workers WHERE name = :n"),
                            {"n": proc.name}).first() is not None


def _pinned_set(pinned: list[str]) -> dict:
    python = python_version(PYTHON)
    return {"dependencies": [p.split("==")[0] for p in pinned], "requires_python": None,
            "pinned": sorted(pinned), "python": python, "key": environment_key(pinned, python)}


def _script(pinned: list[str], body: str) -> str:
    pins = ", ".join(f'"{p}"' for p in pinned)
    return f"# /// script\n# dependencies = [{pins}]\n# ///\n{body}"


@pytest.fixture(autouse=True, scope="module")
def _publish_from_the_index(package_index):
    """Publishing here resolves requirements against the test's package index."""
    old = os.environ.get("SMA_PIP_INDEX_URL")
    os.environ["SMA_PIP_INDEX_URL"] = package_index.simple
    _reset_settings()
    yield
    if old is None:
        os.environ.pop("SMA_PIP_INDEX_URL", None)
    else:
        os.environ["SMA_PIP_INDEX_URL"] = old
    _reset_settings()


# --- set-up -----------------------------------------------------------------------------------

def runbook_with_requirements(api, services, pinned: list[str], body: str,
                              group: str = GROUP) -> str:
    """A runbook whose `# /// script` block pins `pinned`, published (publishing resolves it
    against the test's index); its name."""
    name = f"rb-{uuid.uuid4().hex[:8]}"
    api.create_runbook(name=name, content=_script(pinned, body), worker_group=group,
                       log_verbose=True)
    stored = api.get(f"/api/v1/runbooks/{name}").get_json()["published_version"][
        "requirements"]
    assert stored["pinned"] == sorted(pinned), stored
    assert stored["key"] == _pinned_set(pinned)["key"], stored  # the workers' Python too
    return name


def start_jobs(services, name: str, count: int = 1) -> list[str]:
    """`count` jobs of runbook `name`, started in one transaction (queued at its commit);
    start_job gives each its version's pinned set."""
    with Session(get_engine(services["database_url"])) as s, s.begin():
        act_as(s, TESTER)
        runbook = s.scalar(select(Runbook).where(Runbook.name == name))
        jobs = [start_job(s, runbook, started_by="token:test") for _ in range(count)]
        return [str(job.id) for job in jobs]


# --------------------------------------------------------------------------------------------

def _texts(api, job_id: str, stream: str) -> list[str]:
    return [r["text"] for r in api.records(job_id) if r["stream"] == stream]


def _count(api, job_ids: list[str], words: str) -> int:
    return sum(words in t for j in job_ids for t in _texts(api, j, "Verbose"))


def _package(package_index, *versions: str) -> str:
    name = f"tiny{uuid.uuid4().hex[:8]}"
    for version in versions:
        package_index.add(name, version)
    return name


_SHOW = """
import sys
import smarunbook, automationassets
import {name}
print("version", {name}.VERSION)
try:
    import flask
except ImportError:
    print("no flask")
else:
    print("flask from", flask.__file__)
for entry in sys.path:
    print("path:", entry)
smarunbook.write_verbose("helpers import")
"""


def test_a_package_sma_lacks_runs_and_the_next_job_reuses_its_environment(
        api, services, envs, package_index, module_env_root):
    name = _package(package_index, "1.0.0")
    pinned = [f"{name}==1.0.0"]
    runbook = runbook_with_requirements(api, services, pinned, _SHOW.format(name=name))
    first, = start_jobs(services, runbook)
    job = api.wait(first)
    assert job["status"] == "Completed", (job, _texts(api, first, "Error"))
    assert job["engine_path"] == "cold"  # its own environment's interpreter, not a warm host
    output = _texts(api, first, "Output")
    assert "version 1.0.0" in output
    assert "no flask" in output  # sma's server dependencies are not the runbook's
    key = _pinned_set(pinned)["key"]
    env = module_env_root / key
    paths = [line[6:] for line in output if line.startswith("path: ")]
    packages = [p for p in paths if p.endswith(("site-packages", "dist-packages"))]
    assert packages == [str(env / "lib" / f"python{python_version(PYTHON)}" / "site-packages")]
    verbose = _texts(api, first, "Verbose")
    assert "helpers import" in verbose
    assert _count(api, [first], "building the environment") == 1
    assert _count(api, [first], "built the environment") == 1

    second, = start_jobs(services, runbook)
    job = api.wait(second)
    assert job["status"] == "Completed", (job, _texts(api, second, "Error"))
    assert "version 1.0.0" in _texts(api, second, "Output")
    assert _count(api, [second], "building the environment") == 0
    assert _count(api, [second], f"reusing the environment {key[:12]}") == 1
    assert (env / "sma-environment.json").is_file()
    assert not list(module_env_root.glob(".build-*"))

    # the worker's heartbeat says it has the environment; the runbook's page says where
    engine = get_engine(services["database_url"])

    def reported() -> bool:
        with engine.connect() as conn:
            built = conn.execute(text("SELECT environments FROM workers WHERE name = :n"),
                                 {"n": envs.name}).scalar()
        return built is not None and key in (json.loads(built) if isinstance(built, str)
                                             else built)

    wait_for(reported, timeout=15, what="the worker's heartbeat reporting the environment")
    from smaweb import create_app
    from tests.test_portal import sign_in

    client = create_app({"TESTING": True}).test_client()
    sign_in(client)
    page = " ".join(client.get(f"/runbooks/{runbook}").get_data(as_text=True).split())
    assert f"Environment <code>{key[:12]}</code>" in page
    assert f"group <strong>{GROUP}</strong>: built on its worker" in page


def test_conflicting_versions_run_each_in_its_own_environment(api, services, envs,
                                                              package_index):
    name = _package(package_index, "1.0.0", "2.0.0")
    body = f"import {name}\nprint('version', {name}.VERSION)\n"
    old = runbook_with_requirements(api, services, [f"{name}==1.0.0"], body)
    new = runbook_with_requirements(api, services, [f"{name}==2.0.0"], body)
    old_job, = start_jobs(services, old)
    new_job, = start_jobs(services, new)
    for job_id, version in ((old_job, "1.0.0"), (new_job, "2.0.0")):
        job = api.wait(job_id)
        assert job["status"] == "Completed", (job, _texts(api, job_id, "Error"))
        assert _texts(api, job_id, "Output") == [f"version {version}"]


def _hold_lock(root: Path, key: str) -> int:
    """The environment's lock, taken as a build takes it: jobs that need it wait."""
    fd = os.open(root / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_two_jobs_started_at_once_build_their_environment_once(
        api, services, envs, package_index, module_env_root):
    name = _package(package_index, "1.0.0")
    pinned = [f"{name}==1.0.0"]
    runbook = runbook_with_requirements(api, services, pinned,
                                        f"import {name}\nprint({name}.VERSION)\n")
    key = _pinned_set(pinned)["key"]
    # both jobs reach the lock before either can build: neither starts while it is held
    held = _hold_lock(module_env_root, key)
    try:
        jobs = start_jobs(services, runbook, count=2)
        wait_for(lambda: _count(api, jobs, "waiting for another job") == 2, timeout=30,
                 what="both jobs waiting for the environment")
        assert not (module_env_root / key).exists()
    finally:
        os.close(held)
    for job_id in jobs:
        job = api.wait(job_id)
        assert job["status"] == "Completed", (job, _texts(api, job_id, "Error"))
        assert _texts(api, job_id, "Output") == ["1.0.0"]
    assert _count(api, jobs, "building the environment") == 1
    assert _count(api, jobs, "reusing the environment") == 1
    assert _count(api, jobs, "waiting for another job") == 2  # once each


def test_a_job_stopped_while_it_waits_for_its_environment_stops(
        api, services, envs, package_index, module_env_root):
    name = _package(package_index, "1.0.0")
    pinned = [f"{name}==1.0.0"]
    runbook = runbook_with_requirements(api, services, pinned, "print('ran')\n")
    held = _hold_lock(module_env_root, _pinned_set(pinned)["key"])
    try:
        job_id, = start_jobs(services, runbook)
        wait_for(lambda: _count(api, [job_id], "waiting for another job") == 1, timeout=30,
                 what="the job waiting for its environment")
        assert api.post(f"/api/v1/jobs/{job_id}/stop").status_code == 202
        job = api.wait(job_id, timeout=30)
    finally:
        os.close(held)
    assert job["status"] == "Stopped", job
    assert "ran" not in _texts(api, job_id, "Output")


def _worker_env(root: Path, package_index) -> dict[str, str]:
    return {"SMA_ENV_DIR": str(root), "SMA_PIP_INDEX_URL": package_index.simple,
            "SMA_PYTHON": PYTHON}


def test_a_worker_shut_down_while_a_job_waits_for_its_environment_suspends_it(
        api, services, processes, package_index, env_root):
    group = f"envdown-{uuid.uuid4().hex[:6]}"
    env = {**_worker_env(env_root, package_index), "SMA_SHUTDOWN_GRACE_SECONDS": "1"}
    first = processes.worker(group, concurrency=1, env=env)
    name = _package(package_index, "1.0.0")
    pinned = [f"{name}==1.0.0"]
    runbook = runbook_with_requirements(api, services, pinned, "print('ran')\n", group=group)
    held = _hold_lock(env_root, _pinned_set(pinned)["key"])
    try:
        job_id, = start_jobs(services, runbook)
        wait_for(lambda: _count(api, [job_id], "waiting for another job") == 1, timeout=30,
                 what="the job waiting for its environment")
        first.proc.send_signal(signal.SIGTERM)  # the main process only, as Docker does
        job = api.wait(job_id, timeout=30, statuses=("Suspended",))
    finally:
        os.close(held)
    assert "shut down while the job's environment was built" in job["status_reason"], job
    first.proc.wait(timeout=30)
    processes.worker(group, concurrency=1, env=env)  # it resumes with the group's worker
    job = api.wait(job_id, timeout=60, statuses=("Completed", "Failed", "Stopped"))
    assert job["status"] == "Completed" and job["attempt"] == 2, job
    assert _texts(api, job_id, "Output") == ["ran"]
    assert _count(api, [job_id], "building the environment") == 1


def test_a_job_taken_over_while_it_waits_for_its_environment_is_built_once(
        api, services, processes, package_index, env_root):
    """The worker waiting for the environment's lock is stopped (SIGSTOP) past the job's
    lease: the reaper resumes the job on another worker; the first, woken, gives it up."""
    group = f"envstall-{uuid.uuid4().hex[:6]}"
    env = _worker_env(env_root, package_index)
    processes.beat()
    first = processes.worker(group, concurrency=1, env=env)
    name = _package(package_index, "1.0.0")
    pinned = [f"{name}==1.0.0"]
    runbook = runbook_with_requirements(api, services, pinned, "print('ran')\n", group=group)
    held = _hold_lock(env_root, _pinned_set(pinned)["key"])
    try:
        job_id, = start_jobs(services, runbook)
        wait_for(lambda: _count(api, [job_id], "waiting for another job") == 1, timeout=30,
                 what="the job waiting for its environment")
        second = processes.worker(group, concurrency=1, env=env)
        os.killpg(first.proc.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: api.get(f"/api/v1/jobs/{job_id}").get_json()["attempt"] == 2,
                     timeout=30, what="the job resumed on the other worker")
        finally:
            os.killpg(first.proc.pid, signal.SIGCONT)
        wait_for(lambda: "while its environment was built" in first.log_path.read_text(),
                 timeout=15, what="the first worker giving the job up")
    finally:
        os.close(held)
    job = api.wait(job_id, timeout=60)
    assert job["status"] == "Completed" and job["worker"] == second.name, job
    assert _texts(api, job_id, "Output") == ["ran"]
    assert _count(api, [job_id], "building the environment") == 1


def test_a_build_that_fails_fails_the_job_with_its_reason_and_the_worker_goes_on(
        api, services, envs, package_index, module_env_root):
    missing = f"missing{uuid.uuid4().hex[:8]}"
    wheel = package_index.add(missing, "1.0.0")
    runbook = runbook_with_requirements(api, services, [f"{missing}==1.0.0"], "print('ran')\n")
    wheel.unlink()  # the index lost it after publishing: the build cannot find it
    job_id, = start_jobs(services, runbook)
    job = api.wait(job_id)
    assert job["status"] == "Failed", job
    assert "Building the runbook's environment failed" in job["exception"]
    assert missing in job["exception"] and "not found" in job["exception"]
    errors = _texts(api, job_id, "Error")
    assert errors and missing in errors[0]
    assert "ran" not in _texts(api, job_id, "Output")
    assert not (module_env_root / _pinned_set([f"{missing}==1.0.0"])["key"]).exists()
    assert not list(module_env_root.glob(".build-*"))
    # the worker runs the next job
    assert envs.proc.poll() is None
    plain = api.create_runbook(content="print('still here')\n", worker_group=GROUP)
    job = api.wait(api.start(plain["name"])["id"])
    assert job["status"] == "Completed", job


def _snapshot(env: Path) -> dict[str, tuple[int, int, int]]:
    """Every path of the environment: its mode, size and modification time."""
    found = {}
    for path in [env, *env.rglob("*")]:
        st = os.lstat(path)
        found[str(path.relative_to(env))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


@pytest.mark.skipif(not ROOT_WITH_JOB_USER, reason="jobs run as the worker's own user unless "
                                                  "the worker is root")
def test_the_job_user_cannot_change_a_shared_environment(api, services, envs, package_index,
                                                         module_env_root):
    uv = find_uv()
    if uv is None or not accessible(uv, 65534, {65534}, os.X_OK):
        pytest.skip("uv is not where the job user can run it")
    name = _package(package_index, "1.0.0")
    intruder = _package(package_index, "6.6.6")
    pinned = [f"{name}==1.0.0"]
    key = _pinned_set(pinned)["key"]
    env = module_env_root / key
    warm = runbook_with_requirements(api, services, pinned, f"import {name}\n")
    job_id, = start_jobs(services, warm)
    assert api.wait(job_id)["status"] == "Completed"
    before = _snapshot(env)
    for path in [env, *env.rglob("*")]:  # the worker's, and nobody else's to write
        st = os.lstat(path)
        assert st.st_uid == os.geteuid(), path
        assert path.is_symlink() or not st.st_mode & 0o022, path

    attack = f"""
import subprocess, sys, sysconfig
site = sysconfig.get_paths()["purelib"]
try:
    with open(site + "/planted.py", "w") as fh:
        fh.write("x = 1\\n")
    print("planted")
except PermissionError:
    print("cannot plant")
done = subprocess.run([{uv!r}, "pip", "install", "--no-config", "--python", sys.executable,
                       "--index-url", {package_index.simple!r}, "{intruder}==6.6.6"],
                      capture_output=True, text=True)
print("install exit", done.returncode)
print(done.stderr)
"""
    attacker = runbook_with_requirements(api, services, pinned, attack)
    job_id, = start_jobs(services, attacker)
    job = api.wait(job_id)
    assert job["status"] == "Completed", (job, _texts(api, job_id, "Error"))
    output = _texts(api, job_id, "Output")
    assert "cannot plant" in output and "planted" not in output
    assert "install exit 0" not in output and any(o.startswith("install exit") for o in output)
    assert any("Permission denied" in line for line in output), output

    check = f"""
import importlib.util
for module in ("planted", "{intruder}"):
    print(module, "found" if importlib.util.find_spec(module) else "absent")
"""
    checker = runbook_with_requirements(api, services, pinned, check)
    job_id, = start_jobs(services, checker)
    assert api.wait(job_id)["status"] == "Completed"
    assert _texts(api, job_id, "Output") == ["planted absent", f"{intruder} absent"]
    after = _snapshot(env)
    after.pop(LAST_USED)
    before.pop(LAST_USED)
    assert after == before


# --- the environments of one root, without a worker -----------------------------------------

def _environments(root: Path, package_index) -> Environments:
    return Environments(root, PYTHON, load_settings(pip_index_url=package_index.simple))


def test_idle_environments_go_and_recent_or_busy_ones_stay(env_root, package_index):
    environments = _environments(env_root, package_index)
    built = {}
    for label in ("old", "recent", "busy"):
        name = _package(package_index, "1.0.0")
        built[label] = environments.ensure(_pinned_set([f"{name}==1.0.0"]),
                                           on_progress=lambda _: None)
    built["old"].release()
    built["recent"].release()
    long_ago = time.time() - 31 * 86400
    for label in ("old", "busy"):
        os.utime(built[label].path / LAST_USED, (long_ago, long_ago))
    leftover = env_root / f".build-{built['recent'].key}-0badf00d"  # a build cut short
    leftover.mkdir()

    assert environments.remove_idle(30) == [built["old"].key]
    assert not built["old"].path.exists()
    assert not (env_root / f"{built['old'].key}.lock").exists()
    assert built["recent"].path.is_dir() and built["busy"].path.is_dir()
    assert not leftover.exists()

    built["busy"].release()  # its job ended
    assert environments.remove_idle(30) == [built["busy"].key]
    assert sorted(p.name for p in env_root.iterdir()) == sorted(
        [".cache", built["recent"].key, f"{built['recent'].key}.lock"])


def test_a_worker_removes_idle_environments_when_it_starts(processes, package_index, env_root):
    name = _package(package_index, "1.0.0")
    environment = _environments(env_root, package_index).ensure(
        _pinned_set([f"{name}==1.0.0"]), on_progress=lambda _: None)
    environment.release()
    long_ago = time.time() - 3 * 86400
    os.utime(environment.path / LAST_USED, (long_ago, long_ago))
    processes.worker(f"idle-{uuid.uuid4().hex[:6]}",
                     env={"SMA_ENV_DIR": str(env_root), "SMA_ENV_MAX_IDLE_DAYS": "2",
                          "SMA_PYTHON": PYTHON})
    wait_for(lambda: not environment.path.exists(), timeout=30,
             what="the idle environment removed")


def test_venv_and_pip_build_it_where_uv_is_missing(env_root, package_index):
    environments = _environments(env_root, package_index)
    environments.uv = None
    name = _package(package_index, "3.1.4")
    said: list[str] = []
    environment = environments.ensure(_pinned_set([f"{name}==3.1.4"]), on_progress=said.append)
    try:
        assert any("with venv and pip" in line for line in said)
        done = subprocess.run([str(environment.python), "-I", "-c",
                               f"import {name}; print({name}.VERSION)"],
                              capture_output=True, text=True, timeout=60)
        assert done.stdout == "3.1.4\n", done.stderr
        assert subprocess.run([str(environment.python), "-I", "-c", "import flask"],
                              capture_output=True, timeout=60).returncode != 0
    finally:
        environment.release()


@pytest.mark.parametrize("requirements", [
    {"dependencies": ["x"]},
    {"pinned": []},
    {"pinned": ["x>=1"]},
])
def test_requirements_without_a_pinned_set_are_refused(env_root, package_index,
                                                       requirements):
    with pytest.raises(BuildError, match="no pinned set"):
        _environments(env_root, package_index).ensure(requirements,
                                                      on_progress=lambda _: None)


# --- where environments live ------------------------------------------------------------------

def _sandbox_for(uid: int | None) -> Sandbox:
    """The sandbox of a root worker whose jobs run as `uid` (None: of a worker that runs jobs
    as itself)."""
    return Sandbox("sma-job" if uid else None, uid, uid, None, None, RUNTIME_DIR, PYTHON)


def test_an_env_dir_the_job_user_cannot_reach_is_refused(tmp_path):
    # pytest's own tree is private (0700): a job could not run an interpreter from it
    settings = load_settings(env_dir=str(tmp_path / "envs"), job_uid_range="")
    with pytest.raises(ConfigurationError, match="SMA_ENV_DIR: the job user cannot reach") as e:
        environment_root(settings, _sandbox_for(65534))
    assert "mode 0o700" in e.value.message
    # a worker that runs jobs as itself may keep them anywhere of its own
    assert environment_root(settings, _sandbox_for(None)) == tmp_path / "envs"


def test_a_private_data_folder_puts_environments_in_the_fallback(tmp_path):
    settings = load_settings(data_dir=tmp_path / "data", env_dir="", job_uid_range="")
    assert environment_root(settings, _sandbox_for(65534)) == FALLBACK_ROOT
    reachable = _fresh_root()
    try:
        settings = load_settings(data_dir=reachable, env_dir="", job_uid_range="")
        assert environment_root(settings, _sandbox_for(65534)) == reachable / "envs"
    finally:
        shutil.rmtree(reachable)


def test_an_env_dir_others_may_write_is_refused(env_root):
    env_root.chmod(0o777)  # a job could plant an environment for other jobs to run
    settings = load_settings(env_dir=str(env_root), job_uid_range="")
    with pytest.raises(ConfigurationError, match="writable by it alone"):
        environment_root(settings, _sandbox_for(65534))


@pytest.mark.skipif(not ROOT_WITH_JOB_USER, reason="only a root worker runs jobs as another "
                                                  "user, for whom the folder must be reachable")
def test_a_worker_with_an_unreachable_env_dir_does_not_start(processes, tmp_path):
    with pytest.raises(RuntimeError, match="SMA_ENV_DIR: the job user cannot reach"):
        processes.worker(f"closed-{uuid.uuid4().hex[:6]}",
                         env={"SMA_ENV_DIR": str(tmp_path / "envs"), "SMA_PYTHON": PYTHON})


def test_an_interpreter_the_job_user_cannot_run_fails_the_build(env_root, package_index):
    # a venv's python whose base lives in a private folder (pyenv under /root, say)
    base = os.path.realpath(subprocess.run(
        [sys.executable, "-c", "import sys; print(sys._base_executable)"],
        capture_output=True, text=True, check=True).stdout.strip())
    if accessible(base, 65534, {65534}, os.X_OK):
        pytest.skip(f"{base} is open to every user here")
    environments = Environments(env_root, sys.executable,
                                load_settings(pip_index_url=package_index.simple),
                                reader=(65534, {65534}))
    name = _package(package_index, "1.0.0")
    with pytest.raises(BuildError, match="in a folder the job user cannot enter"):
        environments.ensure(_pinned_set([f"{name}==1.0.0"]), on_progress=lambda _: None)
    assert not [p for p in env_root.iterdir() if len(p.name) == 64]


def test_a_set_resolved_for_another_python_is_installed_for_the_workers(env_root,
                                                                       package_index):
    name = _package(package_index, "1.0.0")
    pinned = [f"{name}==1.0.0"]
    requirements = {**_pinned_set(pinned), "python": "3.99"}
    said: list[str] = []
    environment = _environments(env_root, package_index).ensure(requirements,
                                                                on_progress=said.append)
    environment.release()
    local = python_version(PYTHON)
    assert any(f"resolved for Python 3.99; this worker runs Python {local}" in line
               for line in said), said
    assert environment.key == environment_key(pinned, local)  # keyed by what it holds


def test_a_runbook_pins_an_uploaded_wheel_imports_it_and_the_wheel_cannot_go(
        api, services, envs, tmp_path):
    """An uploaded module is a requirement like any other: publishing resolves it from the
    uploaded files, the worker installs it from sma's index with the job's token."""
    from tests.modulefiles import upload
    from tests.pkgindex import make_wheel

    name = f"acme{uuid.uuid4().hex[:8]}"
    wheel = make_wheel(tmp_path, name, "1.4", files={
        f"{name}/__init__.py": "GREETING = 'hello from an uploaded module'\n"})
    assert upload(api, wheel.read_bytes(), wheel.name).status_code == 201
    runbook = runbook_with_requirements(api, services, [f"{name}==1.4"],
                                        f"import {name}\nprint({name}.GREETING)\n")
    job_id, = start_jobs(services, runbook)
    job = api.wait(job_id)
    assert job["status"] == "Completed", (job, _texts(api, job_id, "Error"))
    assert _texts(api, job_id, "Output") == ["hello from an uploaded module"]
    refused = api.delete(f"/api/v1/modules/{name}/1.4")
    assert refused.status_code == 409 and runbook in refused.get_json()["message"]
