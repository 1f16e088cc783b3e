"""Jobs run as the unprivileged SMA_JOB_USER, each in its own folder and PID namespace."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smacommon.crypto import key_file, load_keys
from smacommon.embedded_redis import free_port
from smacommon.errors import ConfigurationError
from smacommon.migrate import upgrade
from smacommon.settings import load_settings
from smaworker.sandbox import CLEAN_PATH, accessible, build_sandbox
from tests.conftest import wait_for

JOB_USER = os.environ.get("SMA_JOB_USER", "sma-job")

def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


needs_job_user = pytest.mark.skipif(
    os.geteuid() != 0 or not _has_user(JOB_USER),
    reason=f"jobs change user only under a worker started as root, with the user {JOB_USER} "
           "(make deps creates it)")
needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bubblewrap is not installed: no PID namespace per job (make deps installs it)")


def _output(api, job) -> list[str]:
    return api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True).splitlines()


@needs_job_user
def test_job_runs_as_the_job_user_without_groups(api, worker):
    job = api.run("import os, pwd, json\n"
                  "caps = [l.split()[1] for l in open('/proc/self/status')\n"
                  "        if l.startswith(('CapPrm', 'CapEff'))]\n"
                  "try:\n"
                  "    name = pwd.getpwuid(os.getuid()).pw_name\n"
                  "except KeyError:\n"
                  "    name = None\n"
                  "print(json.dumps([name, os.getresuid(),\n"
                  "                  os.getresgid(), sorted(os.getgroups()), os.environ['USER'],\n"
                  "                  oct(os.stat(os.environ['HOME']).st_mode & 0o777), caps,\n"
                  "                  'SMA_RUN_AS' in os.environ]))\n")
    assert job["status"] == "Completed", job
    name, uids, gids, groups, user, mode, caps, leaked = json.loads(_output(api, job)[0])
    entry = pwd.getpwnam(JOB_USER)
    own_uids = load_settings().job_uids  # a uid of its own per job (smaworker/uids.py)
    bwrap = shutil.which("bwrap") is not None
    # inside bubblewrap the job's /etc/passwd names its own uid as the job user
    assert (name, user, mode) == (JOB_USER if bwrap or not own_uids else None, JOB_USER,
                                  "0o700")
    # real, effective and saved ids: no way back to root, and no capability left
    uid = uids[0]
    assert uid in own_uids if own_uids else uid == entry.pw_uid
    assert uids == [uid] * 3 and gids == [entry.pw_gid] * 3
    assert caps == ["0000000000000000"] * 2 and not leaked
    assert groups in ([], [entry.pw_gid])
    bash = api.run("id -u; id -G; grep -E '^Cap(Prm|Eff)' /proc/self/status | cut -f2;"
                   " touch \"$HOME/x\" && echo wrote", runbook_type="bash")
    lines = _output(api, bash)
    assert int(lines[0]) in own_uids if own_uids else int(lines[0]) == entry.pw_uid
    assert lines[1:] == [str(entry.pw_gid), "0000000000000000", "0000000000000000", "wrote"]


@needs_job_user
@needs_bwrap
def test_job_cannot_read_key_file_database_or_another_jobs_folder(api, worker, job_tmp):
    # a data folder as sma makes it: the SQLite database and the generated key file
    data = job_tmp / "data"
    upgrade(f"sqlite:///{data / 'sma.db'}")
    settings = load_settings(data_dir=data, encryption_keys="")
    load_keys(settings, create=True)
    key, db = key_file(settings), data / "sma.db"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    # even with the folder opened up, the files themselves stay closed
    opened = job_tmp / "opened"
    opened.mkdir(mode=0o755)
    opened.chmod(0o755)
    shutil.copy2(key, opened / "encryption.key")
    shutil.copy2(db, opened / "sma.db")

    release = job_tmp / "release"
    holder = api.create_runbook(runbook_type="bash", content=(
        "echo \"the secret of job $SMA_JOB_ID\" > \"$HOME/secret.txt\"\n"
        "echo \"$HOME\"\n"
        f"while [ ! -e {release} ]; do sleep 0.1; done\n"))
    first = api.start(holder["name"])
    deadline = time.monotonic() + 30
    while not _output(api, first):
        assert time.monotonic() < deadline, api.get(f"/api/v1/jobs/{first['id']}").get_json()
        time.sleep(0.1)
    folder = _output(api, first)[0]
    assert Path(folder).is_dir()  # the worker sees it; the next job must not

    probe = (
        "import json, os\n"
        "def attempt(path):\n"
        "    try:\n"
        "        with open(path, 'rb') as fh:\n"
        "            return 'READ ' + fh.read(40).decode(errors='replace')\n"
        "    except OSError as exc:\n"
        "        return type(exc).__name__\n"
        "def listing(path):\n"
        "    try:\n"
        "        return sorted(os.listdir(path))\n"
        "    except OSError as exc:\n"
        "        return type(exc).__name__\n"
        "def environs():\n"
        "    found = []\n"
        "    for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "        try:\n"
        "            found.append(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "        except OSError:\n"
        "            pass\n"
        "    return found\n"
        "paths = json.loads(PATHS)\n"
        "home = os.environ['HOME']\n"
        "print(json.dumps({\n"
        "    'files': {name: attempt(path) for name, path in paths['files'].items()},\n"
        "    'run': listing(os.path.dirname(home)),\n"
        "    'other_home': listing(paths['folder']),\n"
        "    'procs': len([p for p in os.listdir('/proc') if p.isdigit()]),\n"
        "    'seen_tokens': sum(paths['first'].encode() in e for e in environs()),\n"
        "}))\n")
    files = {"key": str(key), "db": str(db), "opened_key": str(opened / "encryption.key"),
             "opened_db": str(opened / "sma.db"), "secret": f"{folder}/secret.txt"}
    paths = json.dumps({"files": files, "folder": folder, "first": first["id"]})
    second = api.run(f"PATHS = {paths!r}\n" + probe)
    (release).touch()
    assert second["status"] == "Completed", second
    seen = json.loads(_output(api, second)[0])
    assert seen["files"] == {"key": "PermissionError", "db": "PermissionError",
                             "opened_key": "PermissionError", "opened_db": "PermissionError",
                             "secret": "FileNotFoundError"}, seen
    # its own folder is the only one in sight, the first job's folder does not exist for it
    assert len(seen["run"]) == 1 and seen["other_home"] == "FileNotFoundError"
    # its own namespace: bwrap's init and itself, nothing of the first job
    assert seen["procs"] <= 3 and seen["seen_tokens"] == 0
    assert api.wait(first["id"])["status"] == "Completed"
    # removed after the job: the worker clears it once the final status is written
    wait_for(lambda: not Path(folder).exists(), timeout=10, what="the first job's folder removed")


@needs_job_user
@needs_bwrap
def test_stop_lets_the_runbook_clean_up_then_ends_what_left_the_group(api, worker, job_tmp):
    content = (f"setsid sleep 1000.{os.getpid()}1 &\n"  # leaves the process group
               f"trap 'echo cleaning; echo cleaned > {job_tmp}/trap; exit 0' TERM\n"
               "echo started\n"
               "while true; do sleep 0.1; done\n")
    rb = api.create_runbook(content=content, runbook_type="bash")
    job = api.start(rb["name"])
    deadline = time.monotonic() + 30
    while "started" not in _output(api, job):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert api.post(f"/api/v1/jobs/{job['id']}/stop").status_code == 202
    done = api.wait(job["id"], timeout=15)
    assert done["status"] == "Stopped"
    assert (job_tmp / "trap").read_text() == "cleaned\n"
    from tests.conftest import wait_gone

    wait_gone(f"1000.{os.getpid()}1")


def test_accessible_follows_the_permission_bits(job_tmp):
    private = job_tmp / "private"
    private.mkdir(mode=0o700)
    (private / "tool").write_text("#!/bin/sh\n")
    (private / "tool").chmod(0o755)
    other, gids = 54321, {54321}
    assert not accessible(private / "tool", other, gids, os.X_OK)
    private.chmod(0o711)
    assert accessible(private / "tool", other, gids, os.X_OK)
    assert not accessible(private, other, gids, os.R_OK)
    (private / "link").symlink_to(private / "tool")
    assert accessible(private / "link", other, gids, os.X_OK)
    private.chmod(0o700)
    assert not accessible(private / "link", other, gids, os.X_OK)
    assert not accessible(job_tmp / "missing", other, gids, os.R_OK)


@pytest.mark.skipif(os.geteuid() != 0, reason="the job user is checked only as root")
def test_missing_job_user_is_a_clear_error():
    settings = load_settings(job_user="no-such-user-here")
    with pytest.raises(ConfigurationError, match="SMA_JOB_USER: there is no user "
                                                 "'no-such-user-here'.*useradd"):
        build_sandbox(settings)
    with pytest.raises(ConfigurationError, match="SMA_JOB_USER: .*root"):
        build_sandbox(load_settings(job_user="root"))


@pytest.mark.skipif(os.geteuid() != 0, reason="the job user is checked only as root")
@pytest.mark.parametrize("command", [["worker"], ["up", "--port", "FREE"]])
def test_worker_and_up_refuse_a_missing_job_user(tmp_path, command):
    env = {"PATH": "/usr/bin:/bin", "SMA_DATA_DIR": str(tmp_path / "data"),
           "HOME": str(tmp_path), "SMA_JOB_USER": "no-such-user-here",
           "SMA_REDIS_URL": "redis://127.0.0.1:1/0"}
    command = [str(free_port()) if arg == "FREE" else arg for arg in command]
    proc = subprocess.run([sys.executable, "-m", "smacli.main", *command], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "SMA_JOB_USER: there is no user 'no-such-user-here'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()  # nothing started, nothing made


def test_job_user_setting_is_validated():
    with pytest.raises(ConfigurationError, match="SMA_JOB_USER"):
        load_settings(job_user="Bad User!")
    assert load_settings(job_user="").job_user == ""


def test_folders_of_dead_worker_processes_are_removed(tmp_path):
    from smaworker.sandbox import remove_orphans

    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.05)
        (run / f"{dead.pid}-abcd1234-{'0' * 32}").mkdir()
        (run / f"{dead.pid}-abcd1234-{'0' * 32}" / "checkpoint.json").write_text("{}")
        mine = run / f"{alive.pid}-abcd1234-{'1' * 32}"
        mine.mkdir()
        (run / "not-ours").mkdir()
        assert remove_orphans(run) == 1
        assert sorted(p.name for p in run.iterdir()) == sorted([mine.name, "not-ours"])
    finally:
        alive.kill()
        alive.wait(timeout=10)
    assert remove_orphans(run) == 1 and sorted(p.name for p in run.iterdir()) == ["not-ours"]


@needs_job_user
def test_python_host_refuses_to_run_when_it_cannot_become_the_job_user(job_tmp):
    """The host drops root itself when SMA_RUN_AS asks; if it cannot, the runbook never
    runs (exit 125 and a message), rather than running with the wrong rights."""
    from smaworker.engines.base import RUNTIME_DIR

    script = job_tmp / "rb.py"
    script.write_text("print('ran')\n")
    spec = job_tmp / "spec.marshal"
    import marshal

    spec.write_bytes(marshal.dumps({"parameters": {}, "has_main": False}, 4))
    for path in (script, spec):
        path.chmod(0o644)
    entry = pwd.getpwnam(JOB_USER)
    python = sys.executable if accessible(sys.executable, entry.pw_uid, {entry.pw_gid},
                                          os.X_OK) else shutil.which("python3", path=CLEAN_PATH)
    host = [python, "-I", str(RUNTIME_DIR / "sma_python_host.py"), str(script), str(spec)]
    bad = subprocess.run(host, env={"SMA_RUN_AS": "nobody"}, capture_output=True, text=True,
                         timeout=30)
    assert (bad.returncode, bad.stdout) == (125, "")
    assert "could not run as the job user (nobody)" in bad.stderr
    # an unprivileged process asked to become root: refused by the kernel, nothing runs
    unprivileged = subprocess.run(
        ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
         "--", *host], env={"SMA_RUN_AS": "0:0"}, capture_output=True, text=True, timeout=30)
    assert (unprivileged.returncode, unprivileged.stdout) == (125, "")
    assert "could not run as the job user (0:0)" in unprivileged.stderr
    good = subprocess.run(host, env={"SMA_RUN_AS": f"{entry.pw_uid}:{entry.pw_gid}"},
                          capture_output=True, text=True, timeout=30)
    assert (good.returncode, good.stdout) == (0, "ran\n"), good.stderr


@needs_job_user
def test_python_jobs_drop_root_in_bwrap_and_use_setpriv_without_it(settings, job_tmp):
    """With bubblewrap, sma's Python host gives up root itself (no setpriv exec); without
    it, setpriv does. Either way the program runs as the job user and nothing else."""
    import dataclasses

    sandbox = build_sandbox(settings)
    entry = pwd.getpwnam(JOB_USER)
    probe = [sandbox.python, "-I", "-c",
             "import os; print(os.getresuid(), 'SMA_RUN_AS' in os.environ)"]
    workdir = Path(sandbox.make_workdir("0" * 32))
    try:
        variants = [dataclasses.replace(sandbox, bwrap=None)]
        if sandbox.bwrap:
            variants.append(sandbox)
        for variant in variants:
            argv, options, env = variant.command(probe, workdir, {"PATH": CLEAN_PATH},
                                                 drops_itself=True)
            if variant.bwrap:
                assert Path(argv[0]).name == "bwrap" and "setpriv" not in " ".join(argv)
                assert env["SMA_RUN_AS"] == f"{entry.pw_uid}:{entry.pw_gid}"
                # a plain program does not drop root by itself: run sma's host instead
                continue
            assert any(Path(a).name == "setpriv" for a in argv) and "SMA_RUN_AS" not in env
            out = subprocess.run(argv, env=env, cwd=workdir, capture_output=True, text=True,
                                 timeout=30, **options)
            uid = entry.pw_uid
            assert out.stdout.strip() == f"({uid}, {uid}, {uid}) False", out.stderr
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _path_without_bwrap(tmp_path: Path) -> str:
    """A PATH with everything a worker needs from PATH but bubblewrap, as on a host where
    the package is not installed."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("setpriv", "bash", "sh", "env", "python3"):
        found = shutil.which(tool)
        if found:
            (folder / tool).symlink_to(found)
    assert shutil.which("bwrap", path=str(folder)) is None
    return str(folder)


UNSANDBOXED = "set SMA_ALLOW_UNSANDBOXED=true to run them without it"


@needs_job_user
@pytest.mark.parametrize("command", [["worker"], ["up", "--port", "FREE"]])
def test_root_worker_without_bubblewrap_refuses_to_start(tmp_path, command):
    env = {"PATH": _path_without_bwrap(tmp_path), "SMA_DATA_DIR": str(tmp_path / "data"),
           "HOME": str(tmp_path), "SMA_REDIS_URL": "redis://127.0.0.1:1/0",
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    command = [str(free_port()) if arg == "FREE" else arg for arg in command]
    proc = subprocess.run([sys.executable, "-m", "smacli.main", *command], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sma: bubblewrap (bwrap) is not installed: "
                                                   "install the bubblewrap package"), lines
    assert UNSANDBOXED in lines[0]
    assert not (tmp_path / "data").exists()  # nothing started, nothing made


@needs_job_user
def test_a_celery_worker_started_directly_without_bubblewrap_refuses(services, tmp_path):
    env = {**os.environ, **services["env"], "PATH": _path_without_bwrap(tmp_path),
           "SMA_WORKER_NAME": "no-bwrap"}
    proc = subprocess.run([sys.executable, "-m", "celery", "-A", "smaworker", "worker", "-c",
                           "1", "--without-gossip", "--without-mingle", "-l", "INFO"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "sma worker: bubblewrap (bwrap) is not installed" in proc.stderr
    assert UNSANDBOXED in proc.stderr


@needs_job_user
def test_without_bubblewrap_jobs_run_only_when_allowed(api, services, processes, tmp_path):
    """SMA_ALLOW_UNSANDBOXED=true: the operator accepts it; jobs still run unprivileged
    (setpriv) with the job user's group and a uid of their own from SMA_JOB_UID_RANGE (no
    name without bubblewrap's /etc/passwd), and the worker says what they can see."""
    group = f"nobwrap-{os.getpid()}"
    worker = processes.worker(group, env={"PATH": _path_without_bwrap(tmp_path),
                                          "SMA_ALLOW_UNSANDBOXED": "true"})
    job = api.run("import os\nprint(os.getuid(), os.getgid(), os.environ['USER'])\n",
                  worker_group=group)
    assert job["status"] == "Completed", job
    uid, gid, user = _output(api, job)[0].split()
    own_uids = load_settings().job_uids
    entry = pwd.getpwnam(JOB_USER)
    assert (int(uid) in own_uids) if own_uids else int(uid) == entry.pw_uid
    assert (int(gid), user) == (entry.pw_gid, JOB_USER)
    assert "can see each other's processes, environment and tokens" in \
        worker.log_path.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root worker refuses")
def test_root_worker_with_empty_job_user_needs_allow_unsandboxed():
    with pytest.raises(ConfigurationError, match="SMA_JOB_USER is empty, so jobs would run "
                                                 "as root.*SMA_ALLOW_UNSANDBOXED=true"):
        build_sandbox(load_settings(job_user=""))
    sandbox = build_sandbox(load_settings(job_user="", allow_unsandboxed=True))
    assert sandbox.user is None and sandbox.bwrap is None
