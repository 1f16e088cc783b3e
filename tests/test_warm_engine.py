"""The warm Python engine (smaworker/warm.py): a job handed to a pre-started host gets all a
cold job gets. Real workers (the session worker runs warm, a worker of its own group runs
cold), real sandboxes, real runbooks; each test first checks which path ran."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import marshal
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
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
    "privileges": [line for line in open('/proc/self/status').read().splitlines()
                   if line.startswith(('Cap', 'NoNewPrivs', 'Seccomp', 'Groups'))],
    "mounts": sorted((fields[4], 'nosuid' in fields[5], 'ro' in fields[5].split(','))
                     for fields in (line.split() for line in open('/proc/self/mountinfo'))
                     if fields[4].startswith(('/tmp', '/proc/', '/etc/'))),
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


def _warm_hosts(worker_pid: int, named: str = "sma-host") -> list[int]:
    """The warm hosts' Python processes under a worker: forked by its zygote (named
    sma-host until their job comes), or started by exec (their argv has --warm); with
    `named`, the processes of that name under it."""
    found = []
    exec_started = set(processes_with_arg("--warm")) if named == "sma-host" else set()
    for pid in (int(entry) for entry in os.listdir("/proc") if entry.isdigit()):
        try:
            with open(f"/proc/{pid}/comm") as fh:
                name = fh.read().strip()
        except OSError:
            continue
        if name != named and (pid not in exec_started or name == "bwrap"):
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
    # no more privileges: no capabilities, no_new_privs (no set-user-ID program gains any);
    # its /tmp, folder and /etc/passwd mounted as bubblewrap mounts them (their paths aside)
    assert seen["privileges"] == baseline["privileges"]
    assert [m[1:] for m in seen["mounts"]] == [m[1:] for m in baseline["mounts"]]
    assert [m[0].replace(seen["home"], "~") for m in seen["mounts"]] == [
        m[0].replace(baseline["home"], "~") for m in baseline["mounts"]]
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


# the job's init (process 1 of its namespace): its PID namespace and when it started (clock
# ticks since boot): a namespace's inode number is reused once it is gone, and a pool
# process's first two inits may start within one tick
INIT = ("os.readlink('/proc/self/ns/pid') + ' ' + "
        "open('/proc/1/stat').read().rsplit(')', 1)[1].split()[19]")


def test_a_clean_jobs_init_forks_the_next_host_with_fresh_folders(api, worker):
    """An init whose job left nothing running takes a later host of its pool process: that
    job is still alone in the namespace, in a new folder, /tmp and /etc/passwd home, and
    is charged only its own CPU time."""
    burn = api.create_runbook(content=(
        "import time\nend = time.process_time() + 0.4\n"
        "while time.process_time() < end: pass\n"
        f"import os\nprint({INIT})\n"))
    probe = api.create_runbook(content=f"import os\nprint({INIT})\n" + PROBE)
    seen, inits, burnt = [], [], []
    for _ in range(3):
        job = api.wait(api.start(burn["name"])["id"])
        assert (job["status"], job["engine_path"]) == ("Completed", "warm")
        burnt.append(_output(api, job)[0])
        assert job["cpu_seconds"] >= 0.3
        for _ in range(2):
            job = api.wait(api.start(probe["name"])["id"])
            assert job["engine_path"] == "warm"
            inits.append(_output(api, job)[0])
            seen.append(_probe(api, job))
            assert job["cpu_seconds"] < 0.3, "charged an earlier job's CPU time"
    # fewer inits than jobs: inits were reused
    assert len(set(inits) | set(burnt)) < len(inits) + len(burnt)
    assert len({p["home"] for p in seen}) == len(seen)  # a folder of its own, every time
    for p in seen:  # nothing another job wrote, no other job's process
        assert [n for n in p["tmp"] if n.startswith("left-by-")] == [f"left-by-{p['job']}"]
        assert p["home_files"] == [".tmp", "left", "runbook.py"]
        assert len(p["cmdlines"]) <= 3
        assert sum(m[0] == "/etc/passwd" for m in p["mounts"]) <= 1


def test_a_process_left_running_dies_with_the_job_and_its_host_is_not_reused(api, worker):
    nap = f"1000.{uuid.uuid4().int % 10**9:09d}"
    job = api.run("import os, subprocess\n"
                  f"subprocess.Popen(['sleep', '{nap}'], start_new_session=True)\n"
                  f"print({HOST})\nprint({INIT})\n")
    assert (job["status"], job["engine_path"]) == ("Completed", "warm")
    wait_gone(nap, timeout=5)
    host = _output(api, job)[0]
    init = _output(api, job)[1]
    for _ in range(3):
        after = api.run(f"import os\nprint({HOST})\nprint({INIT})\n")
        assert after["engine_path"] == "warm"
        assert _output(api, after)[0] != host
        assert _output(api, after)[1] != init  # its init ended with it: a new namespace


HOLDERS = """
import json, os
holders = []
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        lines = open(f'/proc/{pid}/status').read().splitlines()
    except OSError:
        continue
    status = dict(line.split(':\\t', 1) for line in lines if ':\\t' in line)
    if status['Name'] == 'sma-memory':
        holders.append({'pid': int(pid), 'uid': int(status['Uid'].split()[0]),
                        'ppid': int(status['PPid']), 'blocked': int(status['SigBlk'], 16)})
try:
    os.wait()
    waited = 'a child'
except ChildProcessError:
    waited = 'none'
mine = dict(line.split(':\t', 1) for line in open('/proc/self/status').read().splitlines()
            if ':\t' in line)
print(json.dumps({'holders': holders, 'uid': os.getuid(), 'pid': os.getpid(),
                  'ppid': os.getppid(), 'waited': waited, 'blocked': int(mine['SigBlk'], 16)}))
"""


def test_a_hosts_memory_is_held_by_a_process_that_runs_nothing_and_ends_after_it(
        api, worker):
    """Each forked host's memory is shared with a holder (so the host's exit need not free
    it before its init reports the job's end): one process of the job's user, the init's
    child (not the runbook's: its waits see no child it did not start), with every signal
    blocked, ended after the job; a runbook that ends it runs on as before."""
    seen = json.loads(_output(api, api.run(HOLDERS))[0])
    assert len(seen["holders"]) == 1, seen
    holder = seen["holders"][0]
    assert holder["uid"] == seen["uid"] and holder["pid"] != seen["pid"]
    assert holder["ppid"] == seen["ppid"] == 1  # both the namespace's init's children
    every = (1 << 64) - 1 & ~(1 << (signal.SIGKILL - 1)) & ~(1 << (signal.SIGSTOP - 1))
    assert holder["blocked"] == every, hex(holder["blocked"])
    assert seen["blocked"] == 0, hex(seen["blocked"])  # the runbook's mask is its own again
    assert seen["waited"] == "none"
    # a runbook that ends it (it may: its own user's process) is not disturbed
    for _ in range(3):
        killed = api.run(HOLDERS + "import signal\n"
                         "os.kill(holders[0]['pid'], signal.SIGKILL)\n"
                         "print('still here')\n")
        assert (killed["status"], killed["engine_path"]) == ("Completed", "warm"), killed
        assert _output(api, killed)[-1] == "still here"
    after = api.run("print('next')\n")
    assert (after["status"], after["engine_path"]) == ("Completed", "warm")
    # no holder outlives its host: every one left belongs to an idle host waiting for a job
    pid = worker.proc.pid
    wait_for(lambda: len(_warm_hosts(pid, "sma-memory")) == len(_warm_hosts(pid)),
             timeout=10, what="a holder for each idle host, and no other")
    holders = _warm_hosts(pid, "sma-memory")
    assert holders
    # a holder has no pipe, none of its host's (the pool process sees their end when the
    # host ends, not when the holder does), nor its init's
    for holder in holders:
        init = int(_field(holder, "PPid"))
        with open(f"/proc/{init}/task/{init}/children") as fh:
            hosts = [int(p) for p in fh.read().split() if int(p) != holder]
        assert hosts, "a holder without its host"
        assert len(set().union(*(_pipes(host, {1, 2, 3, 4}) for host in hosts))) >= 3
        assert _pipes(holder) == set()


PUT_ASIDE = """
import json, os, resource, sys
sys.path.insert(0, sys.argv[1])
import sma_zygote as z
seen = {}
for target in z._ASIDE:  # pipes of its own where the host has the job's
    r, w = os.pipe()
    os.dup2(w, target)
    os.close(w)
def fds():
    return [os.readlink(f"/proc/self/fd/{fd}") for fd in z._ASIDE]
before = fds()
def clone():
    seen["inside"] = [os.path.exists(f"/proc/self/fd/{fd}") for fd in z._ASIDE]
    return 0
seen["no clone"] = z._put_aside(clone)
def boom():
    raise RuntimeError("boom")
try:
    z._put_aside(boom)
except RuntimeError:
    seen["raised"] = True
highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, highest + 1))
seen["no descriptors"] = z._put_aside(boom)  # no socket to put them in: not called
seen["same"] = fds() == before
with open(sys.argv[2], "w") as fh:
    json.dump(seen, fh)
"""


def test_a_hosts_pipes_put_aside_for_its_holder_always_come_back(tmp_path):
    """While the holder is cloned, the job's pipes are out of the host's descriptors (the
    clone gets none of them); after, they are back at their numbers, whether the clone
    failed, raised, or the host had no descriptor left for the socket they wait in (then
    nothing is cloned)."""
    out = tmp_path / "seen.json"
    runtime = os.path.join(os.path.dirname(warm.__file__), "runtime")
    subprocess.run([sys.executable, "-c", PUT_ASIDE, runtime, str(out)], check=True,
                   timeout=60, stdin=subprocess.DEVNULL)
    seen = json.loads(out.read_text())
    assert seen == {"inside": [False] * 5, "no clone": 0, "raised": True,
                    "no descriptors": 0, "same": True}


def _pipes(pid: int, fds: set[int] | None = None) -> set[str]:
    """The pipes among a process's descriptors (`fds`: only those)."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("pipe:") and (fds is None or int(fd) in fds):
            found.add(link)
    return found


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


# Python waits for the threads that are not daemons and runs the atexit callbacks before it
# exits, whether the script ended by itself, by sys.exit or by an exception
ENDINGS = """
import atexit, sys, threading, time
atexit.register(lambda: print('atexit ran', flush=True))
def broken():
    raise RuntimeError('an atexit callback that fails')
atexit.register(broken)
def work():
    time.sleep(0.3)
    print('thread done', flush=True)
threading.Thread(target=work).start()
print('started', flush=True)
{last}
"""


@pytest.mark.parametrize("last, code", [("", 0), ("sys.exit(3)", 3),
                                        ("raise ValueError('boom')", 1)])
def test_a_runbook_ends_as_python_ends_it_on_both_paths(api, worker, cold, tmp_path, last,
                                                        code):
    script = ENDINGS.format(last=last)
    path = tmp_path / "bare.py"
    path.write_text(script)
    bare = subprocess.run([sys.executable, "-I", str(path)], capture_output=True, text=True,
                          timeout=30)
    assert bare.stdout.splitlines() == ["started", "thread done", "atexit ran"]
    assert bare.returncode == code and "an atexit callback that fails" in bare.stderr
    warm_job = api.run(script)
    rb = api.create_runbook(content=script, worker_group="cold")
    cold_job = api.wait(api.start(rb["name"])["id"])
    for job, path_ran in ((warm_job, "warm"), (cold_job, "cold")):
        assert (job["engine_path"], job["exit_code"]) == (path_ran, code)
        assert job["status"] == ("Completed" if code == 0 else "Failed")
        assert _output(api, job) == bare.stdout.splitlines()
        errors = api.get(f"/api/v1/jobs/{job['id']}/streams",
                         query_string={"stream": "Error"}).get_json()["items"]
        assert any("an atexit callback that fails" in r["text"] for r in errors), errors


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
    return os.readlink(f"/proc/{pid}/cwd")  # a host's folder, its HOME


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


# --- the zygote (runtime/sma_zygote.py): hosts are forked, not started -------------------

def _stat(pid: int) -> tuple[str, int]:
    """A process's name and parent."""
    with open(f"/proc/{pid}/stat") as fh:
        head, rest = fh.read().rsplit(")", 1)
    return head.split("(", 1)[1], int(rest.split()[1])


def _lives(pid: int) -> bool:
    """Whether the process runs (not gone, not a zombie left to reap)."""
    try:
        return _field(pid, "State")[0] != "Z"
    except OSError:
        return False


def _field(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/status") as fh:
        return next(line.split(":", 1)[1].strip() for line in fh if line.startswith(name + ":"))


def _zygotes(pool_pids: set[int]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                name, parent = _stat(int(entry))
            except OSError:
                continue
            if name == "sma-zygote" and parent in pool_pids and _lives(int(entry)):
                found.append(int(entry))
    return found


def test_hosts_are_forked_by_a_zygote_that_holds_nothing_of_the_worker(api, processes):
    own = processes.worker("warmfork", concurrency=1)
    hosts = wait_for(lambda: len(_warm_hosts(own.proc.pid)) == warm.HOSTS
                     and _warm_hosts(own.proc.pid), what="the worker's warm hosts")
    for host in hosts:
        name, init = _stat(host)
        init_name, pool = _stat(init)
        # the host (as the job user), its namespace's init, adopted by the pool process
        assert (name, init_name) == ("sma-host", "sma-init")
        assert _stat(pool)[1] == own.proc.pid
        assert _field(host, "Uid").split()[0] != "0"
        assert _field(host, "NSpid").split()[1:] == ["2"]
        assert _field(init, "NSpid").split()[1:] == ["1"]
        for ns in ("pid", "mnt"):
            assert os.readlink(f"/proc/{host}/ns/{ns}") != os.readlink(f"/proc/{pool}/ns/{ns}")
    pools = {_stat(_stat(host)[1])[1] for host in hosts}
    (zygote,) = _zygotes(pools)
    # started by exec with a clean environment: nothing of the worker's (its database, its
    # broker, its keys), and no descriptor but its socket and the pool process's pidfd
    with open(f"/proc/{zygote}/environ", "rb") as fh:
        names = sorted(item.split(b"=", 1)[0].decode() for item in fh.read().split(b"\0")
                       if item)
    assert names == ["LANG", "LC_ALL", "PATH", "PYTHONUTF8"]
    fds = {fd: os.readlink(f"/proc/{zygote}/fd/{fd}")
           for fd in os.listdir(f"/proc/{zygote}/fd")}
    kinds = sorted(t.split(":")[0] for fd, t in fds.items() if int(fd) > 2)
    assert kinds == ["anon_inode", "socket"], fds  # (stdin, stdout /dev/null; stderr the log)
    job = api.wait(api.start(api.create_runbook(
        content="import os\nprint(os.getpid(), os.getuid() != 0)\n",
        worker_group="warmfork")["name"])["id"])
    assert (job["status"], job["engine_path"]) == ("Completed", "warm")
    assert _output(api, job) == ["2 True"]


def test_a_zygote_that_died_is_replaced_and_jobs_stay_warm(api, processes):
    own = processes.worker("warmzygote", concurrency=1)
    hosts = wait_for(lambda: len(_warm_hosts(own.proc.pid)) == warm.HOSTS
                     and _warm_hosts(own.proc.pid), what="the worker's warm hosts")
    pools = {_stat(_stat(host)[1])[1] for host in hosts}
    (zygote,) = _zygotes(pools)
    os.kill(zygote, signal.SIGKILL)
    wait_for(lambda: not _zygotes(pools), what="the zygote gone")
    assert sorted(_warm_hosts(own.proc.pid)) == sorted(hosts)  # its hosts are not its own
    rb = api.create_runbook(content="print('ran')\n", worker_group="warmzygote")
    for _ in range(3):  # their inits fork the next hosts: no zygote is needed yet
        job = api.wait(api.start(rb["name"])["id"])
        assert (job["status"], job["engine_path"], _output(api, job)) == (
            "Completed", "warm", ["ran"])
    # a job that leaves a process running ends its init: the next host needs a zygote
    nap = f"1000.{uuid.uuid4().int % 10**9:09d}"
    leaver = api.create_runbook(content=(
        "import subprocess\n"
        f"subprocess.Popen(['sleep', '{nap}'], start_new_session=True)\n"),
        worker_group="warmzygote")
    job = api.wait(api.start(leaver["name"])["id"])
    assert (job["status"], job["engine_path"]) == ("Completed", "warm")
    wait_gone(nap, timeout=5)
    wait_for(lambda: len(_zygotes(pools)) == 1, timeout=10, what="a new zygote")
    job = api.wait(api.start(rb["name"])["id"])
    assert (job["status"], job["engine_path"]) == ("Completed", "warm")
    assert "the warm hosts' zygote ended" in own.log_path.read_text()
    # the hosts the dead zygote forked were all used or ended: none is left behind
    wait_for(lambda: len(_warm_hosts(own.proc.pid)) == warm.HOSTS, timeout=10,
             what="two hosts, no more")
    assert not set(hosts) & set(_warm_hosts(own.proc.pid))


def test_forked_hosts_die_with_their_pool_process(api, processes):
    own = processes.worker("warmorphan", concurrency=1)
    hosts = wait_for(lambda: len(_warm_hosts(own.proc.pid)) == warm.HOSTS
                     and _warm_hosts(own.proc.pid), what="the worker's warm hosts")
    inits = [_stat(host)[1] for host in hosts]
    (pool,) = {_stat(init)[1] for init in inits}
    os.kill(pool, signal.SIGKILL)  # the pool process is lost, as in an OOM kill
    wait_for(lambda: not any(_lives(pid) for pid in (*hosts, *inits)),
             timeout=10, what="its hosts and their inits gone")


def test_the_zygote_says_why_it_could_not_fork_and_a_dead_one_is_gone(settings, tmp_path):
    """The pool process's side of the zygote, driven directly: a request the zygote cannot
    serve comes back as ZygoteError saying why, and it goes on serving; a zygote that died
    answers ZygoteGone (its pool process starts a new one)."""
    from smaworker import zygote
    from smaworker.sandbox import build_sandbox

    sandbox = build_sandbox(settings)
    one = zygote.Zygote(sandbox)
    try:
        pipes = [os.pipe() for _ in range(4)]
        descriptors = [pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1]]
        socket.send_fds(one.sock, [marshal.dumps({"namespaces": True})], descriptors)
        with pytest.raises(zygote.ZygoteError, match="KeyError: 'workdir'") as failed:
            one.answer()
        assert not isinstance(failed.value, zygote.ZygoteGone)
        assert one.alive()  # it goes on serving
        os.kill(one.proc.pid, signal.SIGKILL)
        one.proc.wait(timeout=10)
        with pytest.raises(zygote.ZygoteGone):
            one.request(workdir=tmp_path, env={}, umask=0o022, passwd=None, kept=[],
                        cgroup_procs=None, spec_r=pipes[0][0], stdout_w=pipes[1][1],
                        stderr_w=pipes[2][1], report_w=pipes[3][1])
        assert not one.alive()
    finally:
        one.close()
        for r, w in pipes:
            os.close(r)
            os.close(w)


def test_a_host_whose_namespace_cannot_be_made_says_why_and_hosts_start_by_exec(settings,
                                                                                tmp_path):
    """The fork's init could not make the namespace (here: a path to keep that is not
    there): it says why on the host's stderr and exits INIT_FAILED before any job; the
    pool process then starts its hosts by exec (warm.take calls `ended_early`)."""
    from smaworker import zygote
    from smaworker.forked import ForkedProcess
    from smaworker.sandbox import build_sandbox

    sandbox = build_sandbox(settings)
    one = zygote.Zygote(sandbox)
    workdir = sandbox.make_workdir("failing")
    spec_r, spec_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    report_r, report_w = os.pipe()
    proc = None
    try:
        one.request(workdir=workdir, env={}, umask=0o022, passwd=None,
                    kept=[str(tmp_path / "not-there")], cgroup_procs=None,
                    spec_r=spec_r, stdout_w=out_w, stderr_w=err_w, report_w=report_w)
        for fd in (spec_r, out_w, err_w, report_w):
            os.close(fd)
        proc = ForkedProcess(one.answer(), err_r, report_r)
        assert select.select([report_r], [], [], 10)[0]
        assert proc.report() is None  # it ended without a report: no host ran
        assert proc.wait(timeout=10) == zygote.INIT_FAILED
        assert zygote.usable(sandbox)
        zygote.ended_early(proc)
        assert not zygote.usable(sandbox)
        assert "the warm host's namespace could not be made" in zygote._broken
        assert "not-there" in zygote._broken
    finally:
        zygote._broken = None
        one.close()
        if proc is not None:
            proc.stderr.close()
        else:
            os.close(err_r)
            os.close(report_r)
        for fd in (spec_w, out_r):
            os.close(fd)
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_zygote_that_ends_before_it_answers_is_not_started_again(settings):
    """A zygote that cannot start here (it ends before answering anything) is not started
    again for every host: its pool process starts its hosts by exec."""
    from smaworker import zygote
    from smaworker.sandbox import build_sandbox

    sandbox = build_sandbox(settings)
    first = zygote.Zygote(sandbox)
    first.proc.kill()
    first.proc.wait(timeout=10)
    zygote._zygote = first
    try:
        assert zygote.usable(sandbox)
        with pytest.raises(zygote.ZygoteGone, match="ended before it answered"):
            zygote._current(sandbox)
        assert not zygote.usable(sandbox) and zygote._zygote is None
    finally:
        zygote._broken = None
        zygote._zygote = None


@needs_bwrap
@needs_job_user
@contextlib.contextmanager
def _forked_host_ran(settings, name: str, content: str):
    """A forked warm host of this process (no worker) that ran `content` to its end: its
    process (the init), once the report pipe is readable; the host and the zygote go after."""
    from smaworker import zygote
    from smaworker.engines import get_engine
    from smaworker.launch import job_env, write_workdir
    from smaworker.sandbox import build_sandbox

    sandbox = build_sandbox(settings)
    assert zygote.usable(sandbox)
    host = warm.WarmHost(sandbox, settings)
    try:
        runbook = type("Runbook", (), {"name": name, "log_verbose": False,
                                       "log_progress": False, "log_debug": False})()
        env = job_env(sandbox, settings, host.workdir, name, runbook, "token")
        script = write_workdir(host.workdir, get_engine("python"), content, None, env)
        proc, stdout_r, _ = host.hand_off(script, {}, [], [], env)
        assert getattr(proc, "report_fd", None) is not None, "not a forked host"
        while os.read(stdout_r, 65536):
            pass
        os.close(stdout_r)
        assert select.select([proc.report_fd], [], [], 30)[0]
        yield proc
    finally:
        host.discard()
        zygote.release()


def test_a_forked_hosts_init_reports_its_end_before_it_is_reaped(settings):
    """The init of a forked host reports the host's exit status and the usage of the job's
    processes on its report pipe as soon as the host ends (the supervisor ends the job on
    it: the init's own exit waits for its namespace's teardown); the init is reaped after,
    with the same status, and nothing of it stays open."""
    busy = ("import time\nend = time.process_time() + 0.3\n"
            "while time.process_time() < end: pass\nraise SystemExit(3)\n")
    with _forked_host_ran(settings, "report", busy) as proc:
        code, usage = proc.report()
        assert code == 3 and usage.ru_utime + usage.ru_stime >= 0.25
        assert usage.ru_maxrss > 1000  # KiB: the host's interpreter
        assert proc.report_fd is None  # read once, closed
        # its job left nothing running: it says it is free to take the next host (once it
        # unmounted the job's folders), waits for it, and is not signalled with its host's
        # group (it would end); let go, it ends
        assert proc.cleans_up and proc.poll() is None
        assert proc.init.free()
        proc.init.close()
        assert proc.wait(timeout=30) == 0
        assert proc.report() == (code, usage)


def test_an_init_whose_job_left_a_process_is_not_free_and_ends_with_it(settings):
    """After its report, an init whose job left a process running in its namespace does not
    say it is free: it ends, and the process with it; the pool process learns so before it
    would remove the job's folder or ask for the next host."""
    nap = f"1000.{uuid.uuid4().int % 10**9:09d}"
    leaves = ("import subprocess\nsubprocess.Popen(['sleep', '" + nap + "'], "
              "start_new_session=True, stdout=subprocess.DEVNULL, "
              "stderr=subprocess.DEVNULL)\n")
    with _forked_host_ran(settings, "left", leaves) as proc:
        assert proc.init is not None, "not an init that may take the next host"
        assert proc.report()[0] == 0
        assert not proc.init.free()
        assert proc.wait(timeout=30) is not None
        wait_gone(nap, timeout=10)
