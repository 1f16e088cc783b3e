"""Per-job resource limits, as hostile runbooks meet them on real workers, and a uid per job."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smacommon.errors import ConfigurationError
from smacommon.settings import load_settings
from smaworker.cgroups import delegated_root
from smaworker.uids import NoFreeUid, UidPool
from tests.conftest import processes_with_arg, wait_for
from tests.test_sandbox import JOB_USER, needs_job_user

_CGROUP_ROOT, _NO_CGROUP = delegated_root() if os.geteuid() == 0 else (None, "not root")
needs_cgroup_v2 = pytest.mark.skipif(
    _CGROUP_ROOT is None, reason=f"no delegated cgroup v2 here, jobs use setrlimit: {_NO_CGROUP}")

FORK_LOOP = (
    "import os, time\n"
    "print('forking', flush=True)\n"
    "while True:\n"
    "    if os.fork() == 0:\n"
    "        time.sleep(120)\n"
    "        os._exit(0)\n")


@pytest.fixture
def limited(processes):
    """A worker of its own group whose defaults are small limits."""
    return processes.worker("limits", concurrency=2, env={
        "SMA_JOB_MAX_PROCESSES": "32", "SMA_JOB_MEMORY_MB": "256"})


def _records(api, job) -> str:
    return api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True)


def _errors(api, job) -> list[str]:
    return [r["text"] for r in api.records(job["id"], stream="Error")]


def test_fork_loop_ends_failed_naming_the_process_limit(api, limited):
    rb = api.create_runbook(content=FORK_LOOP, worker_group="limits")
    done = api.wait(api.start(rb["name"])["id"], timeout=60)
    assert done["status"] == "Failed", done
    assert "process limit of 32 processes" in done["status_reason"], done
    assert "SMA_JOB_MAX_PROCESSES" in done["status_reason"]
    assert "BlockingIOError" in done["exception"]
    assert done["status_reason"] in _errors(api, done)  # said in its output too


def test_bash_fork_loop_ends_failed_naming_the_process_limit(api, limited):
    # bash tries a refused fork again for about 15 s before it gives up
    rb = api.create_runbook(content="while true; do sleep 120 & done\n", runbook_type="bash",
                            worker_group="limits")
    done = api.wait(api.start(rb["name"])["id"], timeout=90)
    assert done["status"] == "Failed", done
    assert "process limit of 32 processes" in done["status_reason"], done


def test_2gb_allocation_ends_failed_naming_the_memory_limit(api, limited):
    rb = api.create_runbook(content="data = bytearray(2 * 1024 ** 3)\nprint('allocated')\n",
                            worker_group="limits")
    done = api.wait(api.start(rb["name"])["id"])
    assert done["status"] == "Failed", done
    assert "memory limit of 256 MB" in done["status_reason"], done
    assert "SMA_JOB_MEMORY_MB" in done["status_reason"] and "MemoryError" in done["exception"]
    assert "allocated" not in _records(api, done)


def test_bash_allocation_ends_failed_naming_the_memory_limit(api, limited):
    rb = api.create_runbook(content="x=$(head -c 400000000 /dev/zero | tr '\\0' a)\n"
                                    "echo \"${#x} bytes\"\n",
                            runbook_type="bash", worker_group="limits")
    done = api.wait(api.start(rb["name"])["id"])
    assert done["status"] == "Failed", done
    assert "memory limit of 256 MB" in done["status_reason"], done


@needs_job_user
def test_a_fork_bomb_does_not_stop_another_job_of_the_worker_from_starting_processes(
        api, limited, job_tmp):
    """Every job has a uid of its own, so the process limit (counted per uid by the kernel)
    is each job's own: the bomb starves itself, not its neighbour."""
    bombed = job_tmp / "bombed"
    bomb = api.create_runbook(worker_group="limits", content=(
        "import os, time\n"
        "while True:\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except BlockingIOError:\n"
        f"        open({str(bombed)!r}, 'w').close()\n"
        "        time.sleep(120)\n"  # holds every process it could get
        "    if pid == 0:\n"
        "        time.sleep(120)\n"
        "        os._exit(0)\n"))
    bomb_job = api.start(bomb["name"])
    deadline = time.monotonic() + 60
    while not bombed.exists():
        assert time.monotonic() < deadline, api.get(f"/api/v1/jobs/{bomb_job['id']}").get_json()
        time.sleep(0.1)
    neighbour = api.create_runbook(worker_group="limits", runbook_type="bash", content=(
        "for i in $(seq 20); do sleep 0.01 & done; wait\n"
        "python3 -c 'import subprocess; [subprocess.run([\"true\"]) for _ in range(20)]'\n"
        "echo started 40 processes\n"))
    done = api.wait(api.start(neighbour["name"])["id"])
    assert done["status"] == "Completed", (done, _records(api, done))
    assert _records(api, done) == "started 40 processes\n"
    assert api.get(f"/api/v1/jobs/{bomb_job['id']}").get_json()["status"] == "Running"
    assert api.post(f"/api/v1/jobs/{bomb_job['id']}/stop").status_code == 202
    assert api.wait(bomb_job["id"], timeout=30)["status"] == "Stopped"


def test_cpu_and_file_and_open_file_limits_of_the_runbook_name_the_limit(api, worker):
    cpu = api.run("while True:\n    pass\n", max_cpu_seconds=1)
    assert cpu["status"] == "Failed", cpu
    assert cpu["status_reason"].startswith("The runbook was killed by SIGXCPU"), cpu
    assert "CPU time limit of 1 CPU seconds (max_cpu_seconds" in cpu["status_reason"]
    # The kernel sends SIGXCPU on its tick-sampled user+system time; the rusage read at
    # the reap is scaled to the precise run time, which on a busy machine (a process that
    # shares its ticks) is lower: 0.895 s has been seen for a 1 s limit
    assert cpu["cpu_seconds"] is None or 0.5 <= cpu["cpu_seconds"] <= 5, cpu

    big = api.run("open('big', 'wb').write(b'x' * (3 << 20))\n", max_file_mb=1)
    assert big["status"] == "Failed", big
    assert "file size limit of 1 MB per file (max_file_mb" in big["status_reason"], big

    files = api.run("handles = [open(__file__) for _ in range(100)]\n", max_open_files=32)
    assert files["status"] == "Failed", files
    assert "open-file limit of 32 open files" in files["status_reason"], files

    # within the limits, the same runbooks' kind of work completes
    fine = api.run("handles = [open(__file__) for _ in range(10)]\n"
                   "open('f', 'wb').write(b'x' * 1000)\n",
                   max_open_files=32, max_file_mb=1, max_cpu_seconds=5, max_memory_mb=256,
                   max_processes=16)
    assert fine["status"] == "Completed", fine


def test_a_job_that_fails_by_itself_names_no_limit(api, worker):
    plain = api.run("raise SystemExit(3)\n")
    assert plain["status_reason"] == "The runbook exited with code 3."
    error = api.run("raise ValueError('bad input')\n", runbook_type="python")
    assert error["status_reason"] == "The runbook exited with code 1."


def test_job_detail_has_cpu_time_and_peak_memory(api, worker):
    done = api.run("import time\n"
                   "data = bytearray(200 << 20)\n"
                   "data[::4096] = b'x' * len(data[::4096])\n"
                   "end = time.process_time() + 0.5\n"
                   "while time.process_time() < end:\n"
                   "    pass\n")
    assert done["status"] == "Completed", done
    assert done["cpu_seconds"] >= 0.45, done
    if shutil.which("bwrap") and os.geteuid() == 0 or _CGROUP_ROOT is not None:
        assert 200 <= done["peak_memory_mb"] < 400, done
    bash = api.run("echo hi\n", runbook_type="bash")
    assert bash["cpu_seconds"] is not None and bash["cpu_seconds"] < 5


@needs_job_user
def test_each_running_job_has_a_uid_of_its_own_named_as_the_job_user(api, worker, job_tmp):
    settings = load_settings()
    release = job_tmp / "release"
    probe = ("import os, pwd, time\n"
             f"print(os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name, flush=True)\n"
             f"while not os.path.exists({str(release)!r}):\n"
             "    time.sleep(0.05)\n")
    rb = api.create_runbook(content=probe)
    jobs = [api.start(rb["name"]) for _ in range(2)]
    deadline = time.monotonic() + 60
    while not all(_records(api, j) for j in jobs):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    release.touch()
    seen = [_records(api, j).split() for j in jobs]
    entry = pwd.getpwnam(JOB_USER)
    uids = {int(uid) for uid, _, _ in seen}
    assert len(uids) == 2 and uids <= set(settings.job_uids), seen
    assert {int(gid) for _, gid, _ in seen} == {entry.pw_gid}
    if shutil.which("bwrap"):
        assert {name for _, _, name in seen} == {JOB_USER}
    for job in jobs:
        assert api.wait(job["id"])["status"] == "Completed"


@needs_job_user
def test_jobs_with_uids_of_their_own_still_share_files_through_their_group(api, worker,
                                                                          job_tmp):
    shared = job_tmp / "shared.log"
    rb = api.create_runbook(runbook_type="bash",
                            content=f"echo \"$SMA_JOB_ID\" >> {shared}\n")
    first = api.wait(api.start(rb["name"])["id"])
    second = api.wait(api.start(rb["name"])["id"])
    assert (first["status"], second["status"]) == ("Completed", "Completed"), second
    assert shared.read_text().split() == [first["id"], second["id"]]
    assert shared.stat().st_mode & 0o020  # group-writable: the job user's group


@pytest.mark.parametrize("field,value", [
    ("max_memory_mb", 0), ("max_memory_mb", 15), ("max_memory_mb", 1 << 30),
    ("max_processes", 0), ("max_processes", -1), ("max_open_files", 8),
    ("max_cpu_seconds", 0), ("max_file_mb", "lots"), ("max_file_mb", 1.5),
    ("max_processes", True)])
def test_limits_out_of_range_are_refused(api, field, value):
    rb = api.create_runbook(publish=False)
    resp = api.patch(f"/api/v1/runbooks/{rb['name']}", json={field: value})
    assert resp.status_code in (400, 422), resp.get_json()
    assert field in str(resp.get_json()), resp.get_json()
    resp = api.post("/api/v1/runbooks", json={"name": "other", "runbook_type": "python",
                                              "content": "print(1)\n", field: value})
    assert resp.status_code in (400, 422), resp.get_json()


def test_limits_are_set_shown_and_cleared(api):
    rb = api.create_runbook(publish=False, max_memory_mb=512)
    assert rb["max_memory_mb"] == 512 and rb["max_processes"] is None
    changed = api.patch(f"/api/v1/runbooks/{rb['name']}",
                        json={"max_processes": 64, "max_memory_mb": None,
                              "max_cpu_seconds": 600, "max_open_files": 256,
                              "max_file_mb": 100})
    assert changed.status_code == 200, changed.get_json()
    got = api.get(f"/api/v1/runbooks/{rb['name']}").get_json()
    assert (got["max_memory_mb"], got["max_processes"], got["max_cpu_seconds"],
            got["max_open_files"], got["max_file_mb"]) == (None, 64, 600, 256, 100)


@pytest.mark.parametrize("name,value", [
    ("job_uid_range", "10-20"), ("job_uid_range", "70000-60000"), ("job_uid_range", "a-b"),
    ("job_uid_range", "0-5000"), ("job_memory_mb", -1), ("job_max_processes", "many")])
def test_bad_limit_settings_are_refused(name, value):
    with pytest.raises(ConfigurationError, match=f"SMA_{name.upper()}"):
        load_settings(**{name: value})


def test_uids_are_held_by_one_job_at_a_time_across_processes(tmp_path):
    uids = range(4_000_100, 4_000_102)
    pool = UidPool(tmp_path / "uids", uids, gid=os.getgid(), setpriv=None, sweep=False)
    first = pool.claim()
    # another worker process on the host claims from the same folder
    code = ("import sys, time\n"
            "from pathlib import Path\n"
            "from smaworker.uids import UidPool\n"
            f"pool = UidPool(Path({str(tmp_path / 'uids')!r}), range(4_000_100, 4_000_102), "
            "gid=0, setpriv=None, sweep=False)\n"
            "print(pool.claim().uid, flush=True)\n"
            "time.sleep(60)\n")
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    try:
        taken = int(other.stdout.readline())
        assert {first.uid, taken} == set(uids)
        with pytest.raises(NoFreeUid, match="SMA_JOB_UID_RANGE"):
            pool.claim()
        first.release()
        again = pool.claim()
        assert again.uid == first.uid
        other.kill()  # a worker process that dies lets go of its uid
        other.wait(timeout=10)
        assert pool.claim().uid == taken
    finally:
        other.kill()
        other.wait(timeout=10)


@needs_job_user
def test_without_bubblewrap_a_uid_is_cleared_of_what_its_last_job_left(tmp_path):
    """No PID namespace ends a job's processes without bubblewrap: what it left running
    (here a process that left its group) is killed before the uid serves the next job."""
    entry = pwd.getpwnam(JOB_USER)
    uid = 4_000_200
    marker = f"4000.{os.getpid()}7"
    left = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={entry.pw_gid}",
                             "--clear-groups", "--", "setsid", "sleep", marker])

    def left_as_the_uid() -> bool:
        # the sleep itself, not setpriv before it changes uid: the sweep sees only the uid's
        for pid in processes_with_arg(marker):
            try:
                with open(f"/proc/{pid}/status") as fh:
                    uids = next(line for line in fh if line.startswith("Uid:")).split()[1:]
                with open(f"/proc/{pid}/comm") as fh:
                    if fh.read().strip() == "sleep" and int(uids[0]) == uid:
                        return True
            except (OSError, StopIteration):
                continue
        return False

    wait_for(left_as_the_uid, timeout=10, what="the left process running as the uid")
    pool = UidPool(tmp_path / "uids", range(uid, uid + 1), gid=entry.pw_gid,
                   setpriv=shutil.which("setpriv"), sweep=True)
    held = pool.claim()
    try:
        from tests.conftest import wait_gone

        wait_gone(marker)
    finally:
        held.release()
        left.kill()
        left.wait(timeout=10)


@needs_cgroup_v2
def test_with_a_cgroup_memory_is_a_limit_of_the_whole_job(api, processes):
    processes.worker("cg", env={"SMA_JOB_MEMORY_MB": "64"})
    done = api.run("import subprocess\n"
                   "procs = [subprocess.Popen(['python3', '-c', 'b = b\"x\" * (40 << 20); "
                   "import time; time.sleep(30)']) for _ in range(3)]\n"
                   "[p.wait() for p in procs]\n"
                   "data = b'x' * (100 << 20)\n", worker_group="cg")
    assert done["status"] == "Failed", done
    assert "memory limit of 64 MB" in done["status_reason"], done
    assert done["peak_memory_mb"] is not None and done["peak_memory_mb"] <= 70


@needs_cgroup_v2
def test_with_a_cgroup_a_fork_loop_names_the_process_limit(api, processes):
    processes.worker("cg", env={"SMA_JOB_MAX_PROCESSES": "32"})
    done = api.run(FORK_LOOP, worker_group="cg")
    assert done["status"] == "Failed", done
    assert "process limit of 32 processes" in done["status_reason"], done


def test_portal_shows_the_limits_and_what_the_job_used(api, worker, client):
    from tests.test_portal import sign_in

    sign_in(client)
    rb = api.create_runbook(content="print('hi')\n", max_memory_mb=300, max_processes=40)
    page = client.get(f"/runbooks/{rb['name']}").get_data(as_text=True)
    assert "memory 300 MB" in page and "40 processes" in page
    done = api.wait(api.start(rb["name"])["id"])
    page = client.get(f"/jobs/{done['id']}").get_data(as_text=True)
    assert f"{done['cpu_seconds']:.2f} s" in page
    if done["peak_memory_mb"] is not None:
        assert f"{done['peak_memory_mb']} MB" in page


def test_cli_sets_and_shows_the_limits_and_refuses_bad_ones(services, tmp_path):
    from tests.conftest import ADMIN_TOKEN

    script = tmp_path / "capped.py"
    script.write_text("print('hi')\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "SMA_URL": services["api_url"], "SMA_TOKEN": ADMIN_TOKEN,
           "PYTHONPATH": str(Path(__file__).parent.parent)}  # this checkout's sma

    def sma(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "smacli.main", *args], env=env,
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)

    made = sma("runbook", "import", str(script), "--max-memory-mb", "300",
               "--max-processes", "50")
    assert made.returncode == 0, made.stderr
    shown = sma("runbook", "show", "capped")
    assert "300 MB memory, 50 processes" in shown.stdout, shown.stdout
    bad = sma("runbook", "import", str(script), "--max-open-files", "3")
    assert bad.returncode == 1 and "max_open_files" in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_every_way_of_applying_the_limits_sets_the_same_ones(tmp_path):
    """sma's Python host, Bash's BASH_ENV helper and prlimit (PowerShell) set what the
    worker asks, so a job's limits do not depend on its language."""
    import marshal

    from smaworker.engines.base import RUNTIME_DIR
    from smaworker.limits import JobLimits, prlimit_argv, rlimit_spec

    rlimits = JobLimits(max_memory_mb=300, max_processes=30, max_open_files=64,
                        max_cpu_seconds=7, max_file_mb=2).rlimits(in_cgroup=False)
    show = ("import resource\n"
            "print(*[resource.getrlimit(getattr(resource, 'RLIMIT_' + n)) for n in "
            "('CORE', 'DATA', 'NPROC', 'NOFILE', 'CPU', 'FSIZE')])\n")
    script = tmp_path / "show.py"
    script.write_text(show)
    spec_path = tmp_path / "spec.marshal"
    spec_path.write_bytes(marshal.dumps({"parameters": {}, "has_main": False}, 4))
    env = {"PATH": os.environ["PATH"], "SMA_RLIMITS": rlimit_spec(rlimits)}
    ways = {
        "python host": [sys.executable, "-I", str(RUNTIME_DIR / "sma_python_host.py"),
                        str(script), str(spec_path)],
        "bash": ["bash", "--noprofile", "--norc", "-c", f"{sys.executable} -I {script}"],
        "prlimit": prlimit_argv(rlimits, [sys.executable, "-I", str(script)]),
    }
    seen = {}
    for way, argv in ways.items():
        extra = {"BASH_ENV": str(RUNTIME_DIR / "sma.sh")} if way == "bash" else {}
        out = subprocess.run(argv, env={**env, **extra}, capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, (way, out.stderr)
        seen[way] = out.stdout.strip()
    expected = " ".join(str(rlimits[n]) for n in ("core", "data", "nproc", "nofile", "cpu",
                                                  "fsize"))
    assert seen == dict.fromkeys(ways, expected), seen
    assert rlimits["data"] == (300 << 20,) * 2 and rlimits["cpu"] == (7, 12)
