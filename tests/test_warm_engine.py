"""The warm Python engine (smaworker/warm.py): a job handed to a pre-started host gets all a
cold job gets. Real workers (the session worker runs warm, a worker of its own group runs
cold), real sandboxes, real runbooks; each test first checks which path ran."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import time
import uuid

import pytest

from smaworker import warm
from tests.conftest import processes_with_arg, wait_for, wait_gone
from tests.test_sandbox import needs_bwrap, needs_job_user

pytestmark = [pytest.mark.e2e, needs_job_user, needs_bwrap]

# What a job sees of itself: compared between the warm and the cold path.
PROBE = """
import hashlib, json, os, resource, sys
fds = {}
for fd in os.listdir('/proc/self/fd'):
    try:
        fds[fd] = os.readlink(f'/proc/self/fd/{fd}')
    except OSError:
        pass
cmdlines = []
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            cmdlines.append(open(f'/proc/{pid}/cmdline', 'rb').read().decode(errors='replace'))
        except OSError:
            pass
open('/tmp/left-by-' + os.environ['SMA_JOB_ID'], 'w').write('x')
open(os.path.join(os.environ['HOME'], 'left'), 'w').write('x')
print(json.dumps({
    "own_group": os.getpgid(0) == os.getpid(), "pgid": os.getpgid(0), "sid": os.getsid(0),
    "pid": os.getpid(), "uid": os.getuid(),
    "started": open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19],
    "fds": sorted(fds.values()), "env": sorted(os.environ), "cmdlines": cmdlines,
    "tmp": sorted(os.listdir('/tmp')), "home": os.environ['HOME'], "cwd": os.getcwd(),
    "home_files": sorted(os.listdir(os.environ['HOME'])),
    "token": hashlib.sha256(os.environ['SMA_JOB_TOKEN'].encode()).hexdigest(),
    "job": os.environ['SMA_JOB_ID'], "argv": sys.argv,
    "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
    "helpers": 'smarunbook' in sys.modules,
}))
"""


# the job's process: when it started (clock ticks since boot) and its folder, made with its
# host (a process's two hosts may start within one tick)
HOST = "open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19], os.environ['HOME']"


def _output(api, job) -> list[str]:
    return api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True).splitlines()


def _probe(api, job) -> dict:
    assert job["status"] == "Completed", (job, _output(api, job))
    return json.loads(_output(api, job)[-1])


@pytest.fixture
def cold(processes):
    """A worker with SMA_WARM_PYTHON=false, serving the group `cold`."""
    return processes.worker("cold", concurrency=1, env={"SMA_WARM_PYTHON": "false"})


def _warm_hosts(worker_pid: int) -> list[int]:
    """The warm hosts' Python processes under a worker (their argv has --warm)."""
    found = []
    for pid in processes_with_arg("--warm"):
        try:
            with open(f"/proc/{pid}/comm") as fh:
                if fh.read().strip() == "bwrap":
                    continue
        except OSError:
            continue
        ancestor = pid
        while ancestor > 1:
            try:
                with open(f"/proc/{ancestor}/stat") as fh:
                    ancestor = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                break
            if ancestor == worker_pid:
                found.append(pid)
                break
    return found


def test_a_warm_job_sees_what_a_cold_job_sees(api, worker, cold):
    warm = api.run(PROBE, parameters=None)
    assert warm["engine_path"] == "warm"
    seen = _probe(api, warm)
    rb = api.create_runbook(content=PROBE, worker_group="cold")
    job = api.wait(api.start(rb["name"])["id"])
    assert job["engine_path"] == "cold"
    baseline = _probe(api, job)
    # its own process group and session, as a cold job's
    assert (seen["own_group"], seen["pgid"] == seen["sid"]) == (
        baseline["own_group"], baseline["pgid"] == baseline["sid"])
    # the same variables, no worker's; its own id and token (which the API took: see the
    # masking test), argv as a cold host sets it
    assert seen["env"] == baseline["env"]
    assert not any(k.startswith(("CELERY", "SMA_DATABASE", "SMA_REDIS", "SMA_ADMIN"))
                   for k in seen["env"])
    assert seen["job"] == warm["id"] and seen["token"] != baseline["token"]
    assert seen["argv"] == [os.path.join(seen["home"], "runbook.py")]
    # no inherited descriptor: /dev/null, its pipes, and the listing of /proc/self/fd
    assert len(seen["fds"]) == len(baseline["fds"])
    assert all(t == "/dev/null" or t.startswith(("pipe:", "/proc/")) for t in seen["fds"])
    # a private folder and /tmp: only what it wrote itself
    assert seen["home"] == seen["cwd"] and seen["home"] != baseline["home"]
    assert seen["home_files"] == [".tmp", "left", "runbook.py"]  # .tmp: its /tmp
    assert [n for n in seen["tmp"] if n.startswith("left-by-")] == [f"left-by-{warm['id']}"]
    assert seen["nofile"] == baseline["nofile"]
    assert not baseline["helpers"]  # a cold host imports nothing for the runbook


def test_a_host_left_idle_imports_the_helpers_before_its_job(api, processes):
    """A host waiting IDLE_SECONDS imports sma's helpers and common modules (hashlib among
    them: its extension module, mapped into the host, shows it got that far)."""
    origin = importlib.util.find_spec("_hashlib").origin or ""
    if not origin.endswith(".so"):
        pytest.skip("this Python's _hashlib is built in: the host's imports cannot be seen")
    own = processes.worker("warmidle", concurrency=1)
    hosts = wait_for(lambda: len(_warm_hosts(own.proc.pid)) == warm.HOSTS
                     and _warm_hosts(own.proc.pid), what="the worker's warm hosts")
    wait_for(lambda: all(_maps(pid, "/_hashlib.") for pid in hosts), timeout=30,
             what="the idle hosts' imports")
    rb = api.create_runbook(content="import sys\nprint('smarunbook' in sys.modules)\n",
                            worker_group="warmidle")
    job = api.wait(api.start(rb["name"])["id"])
    assert (job["status"], job["engine_path"]) == ("Completed", "warm")
    assert _output(api, job) == ["True"]


def _maps(pid: int, part: str) -> bool:
    try:
        with open(f"/proc/{pid}/maps") as fh:
            return part in fh.read()
    except OSError:
        return False


def test_warm_jobs_at_once_see_only_their_own_processes_folders_and_tmp(api, worker):
    nap = f"1000.{uuid.uuid4().int % 10**9:09d}"
    sleeper = api.create_runbook(content=(
        "import subprocess, time\n"
        f"subprocess.Popen(['sleep', '{nap}'])\n"
        "open('/tmp/mine', 'w').write('a')\n"
        "print('started', flush=True)\n"
        "time.sleep(1000)\n"))
    first = api.start(sleeper["name"])
    wait_for(lambda: "started" in _output(api, first), what="the first job running")
    assert processes_with_arg(nap)  # the test sees it; the other job must not
    second = api.run(PROBE)
    assert second["engine_path"] == "warm"
    seen = _probe(api, second)
    assert not any(nap in line for line in seen["cmdlines"])
    assert len(seen["cmdlines"]) <= 3  # bubblewrap's init, the runbook (and nothing else)
    assert "mine" not in seen["tmp"]
    assert api.post(f"/api/v1/jobs/{first['id']}/stop").status_code == 202
    stopped = api.wait(first["id"])
    assert (stopped["status"], stopped["engine_path"]) == ("Stopped", "warm")
    wait_gone(nap)


def test_every_warm_job_has_a_host_of_its_own_and_a_fresh_tmp(api, worker):
    rb = api.create_runbook(content=PROBE)
    seen = []
    for _ in range(4):
        job = api.wait(api.start(rb["name"])["id"])
        assert job["engine_path"] == "warm"
        seen.append(_probe(api, job))
    # a host and a folder of its own, never one twice: a host's folder is made with it, so
    # four folders are four hosts (its start time in clock ticks is no proof: a process's
    # two hosts may start within one tick; namespaces' inode numbers are reused)
    assert len({s["home"] for s in seen}) == 4
    for probe in seen:  # nothing another job wrote in its /tmp or its folder
        assert [n for n in probe["tmp"] if n.startswith("left-by-")] == [
            f"left-by-{probe['job']}"]
        assert probe["home_files"] == [".tmp", "left", "runbook.py"]


def test_a_process_left_running_dies_with_the_job_and_its_host_is_not_reused(api, worker):
    nap = f"1000.{uuid.uuid4().int % 10**9:09d}"
    job = api.run("import os, subprocess\n"
                  f"subprocess.Popen(['sleep', '{nap}'], start_new_session=True)\n"
                  f"print({HOST})\n")
    assert (job["status"], job["engine_path"]) == ("Completed", "warm")
    wait_gone(nap, timeout=5)
    host = _output(api, job)[0]
    for _ in range(3):
        after = api.run(f"import os\nprint({HOST})\n")
        assert after["engine_path"] == "warm"
        assert _output(api, after)[0] != host


def test_a_lower_limit_runs_warm_and_a_higher_one_cold(api, worker):
    probe = "import resource\nprint(resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    lower = api.run(probe, max_open_files=64)
    assert (lower["status"], lower["engine_path"]) == ("Completed", "warm")
    assert _output(api, lower) == ["(64, 64)"]
    spawn = ("import os\nfor _ in range(40):\n"
             "    if os.fork() == 0:\n        import time; time.sleep(5); os._exit(0)\n")
    capped = api.run(spawn, max_processes=8)
    assert (capped["status"], capped["engine_path"]) == ("Failed", "warm")
    assert "process limit of 8" in capped["status_reason"]
    higher = api.run("import resource\nprint(resource.getrlimit(resource.RLIMIT_NPROC))\n",
                     max_processes=4096)  # above SMA_JOB_MAX_PROCESSES (512)
    assert (higher["status"], higher["engine_path"]) == ("Completed", "cold")
    assert _output(api, higher) == ["(4096, 4096)"]
    # a CPU limit of its own runs cold: RLIMIT_CPU would count the warm host's start too
    cpu = api.run("import resource\nprint(resource.getrlimit(resource.RLIMIT_CPU))\n",
                  max_cpu_seconds=30)
    assert (cpu["status"], cpu["engine_path"]) == ("Completed", "cold")
    assert _output(api, cpu) == ["(30, 35)"]


def test_timeout_output_limit_and_masking_on_the_warm_path(api, worker):
    timed = api.run("import time\nprint('waiting', flush=True)\ntime.sleep(1000)\n",
                    timeout_seconds=2)
    assert (timed["status"], timed["engine_path"]) == ("Failed", "warm")
    assert "timeout of 2 s" in timed["status_reason"]
    flood = api.run("import sys\nchunk = 'y' * 1023 + '\\n'\n"
                    "for _ in range(50 * 1024):\n    sys.stdout.write(chunk)\n", timeout=120)
    assert (flood["status"], flood["engine_path"]) == ("Failed", "warm")
    assert "output limit" in flood["status_reason"]
    name = f"secret-{uuid.uuid4().hex[:8]}"
    assert api.post("/api/v1/variables", json={"name": name, "value": "hunter2-warm-secret",
                                               "is_encrypted": True}).status_code == 201
    masked = api.run("import sys, smarunbook\n"
                     f"value = smarunbook.get_automation_variable({name!r})\n"
                     "print('it is', value)\nsys.stderr.write(value + '\\n')\n")
    assert (masked["status"], masked["engine_path"]) == ("Completed", "warm")
    texts = [r["text"] for r in api.records(masked["id"])]
    assert sorted(texts) == ["***", "it is ***"]


def test_suspend_and_resume_from_the_checkpoint_on_the_warm_path(api, worker):
    steps = ("import time, smarunbook\n"
             "start = smarunbook.last_checkpoint(0)\n"
             "for i in range(start, 8):\n"
             "    print(f'step {i}', flush=True)\n"
             "    smarunbook.checkpoint(i + 1)\n"
             "    time.sleep(0.3)\n"
             "print('done')\n")
    job = api.start(api.create_runbook(content=steps)["name"])
    wait_for(lambda: "step 2" in _output(api, job), what="step 2")
    assert api.post(f"/api/v1/jobs/{job['id']}/suspend").status_code == 202
    suspended = api.wait(job["id"], statuses=("Suspended",))
    assert suspended["engine_path"] == "warm" and suspended["has_checkpoint"]
    assert api.post(f"/api/v1/jobs/{job['id']}/resume").status_code == 202
    done = api.wait(job["id"])
    assert (done["status"], done["engine_path"]) == ("Completed", "warm")
    lines = [line for line in _output(api, job) if not line.startswith("---")]
    assert lines.count("step 0") == 1 and lines[-1] == "done"


def test_the_setting_off_and_other_engines_run_cold(api, worker, cold):
    rb = api.create_runbook(content="print('hi')\n", worker_group="cold")
    job = api.wait(api.start(rb["name"])["id"])
    assert (job["status"], job["engine_path"]) == ("Completed", "cold")
    bash = api.run("echo hi", runbook_type="bash")
    assert (bash["status"], bash["engine_path"]) == ("Completed", "cold")
    assert _warm_hosts(cold.proc.pid) == []  # the cold worker starts none


def test_two_hosts_wait_per_process_and_a_job_takes_the_older(api, processes):
    own = processes.worker("warmtwo", concurrency=1)

    def two_hosts():
        found = _warm_hosts(own.proc.pid)
        return found if len(found) == warm.HOSTS else None

    first = wait_for(two_hosts, what="the worker's warm hosts")
    assert warm.HOSTS == 2
    rb = api.create_runbook(content="import os\nprint(os.environ['HOME'])\n",
                            worker_group="warmtwo")
    job = api.wait(api.start(rb["name"])["id"])
    assert (job["status"], job["engine_path"]) == ("Completed", "warm")
    # one of the two ran it and is gone; a new one is started after the job
    then = wait_for(lambda: (found := two_hosts()) and set(found) != set(first) and found,
                    what="two hosts again")
    (survivor,) = set(first) & set(then)
    waiting_longer = _home(survivor)
    # the next job takes the host that waited longer, not the one started after the job
    job = api.wait(api.start(rb["name"])["id"])
    assert (job["status"], job["engine_path"]) == ("Completed", "warm")
    assert _output(api, job) == [waiting_longer]


def _home(pid: int) -> str:
    with open(f"/proc/{pid}/environ", "rb") as fh:
        env = dict(item.split(b"=", 1) for item in fh.read().split(b"\0") if b"=" in item)
    return env[b"HOME"].decode()


def test_a_host_that_died_is_discarded_and_its_job_runs_cold(api, processes):
    own = processes.worker("warmdeath", concurrency=1)
    hosts = wait_for(lambda: len(_warm_hosts(own.proc.pid)) == warm.HOSTS
                     and _warm_hosts(own.proc.pid), what="the worker's warm hosts")
    for host in hosts:  # every host of the process
        os.kill(host, signal.SIGKILL)
    wait_for(lambda: not any(os.path.exists(f"/proc/{host}") for host in hosts),
             what="the hosts gone")
    time.sleep(0.2)  # its bubblewrap ends after it
    rb = api.create_runbook(content="print('ran')\n", worker_group="warmdeath")
    job = api.wait(api.start(rb["name"])["id"])
    assert (job["status"], job["engine_path"]) == ("Completed", "cold")
    assert _output(api, job) == ["ran"]
    again = api.wait(api.start(rb["name"])["id"])  # a fresh host was started meanwhile
    assert (again["status"], again["engine_path"]) == ("Completed", "warm")
    log = own.log_path.read_text()
    assert "ended before its job" in log or "gone at its job's hand-off" in log
