"""Graceful shutdown: a worker told to stop (SIGTERM, Ctrl-C; `sma up` or Docker) takes no
more jobs, lets running ones end within SMA_SHUTDOWN_GRACE_SECONDS, suspends the rest and
leaves the workers list at once; they resume from their checkpoint, without counting as a
failed attempt, as soon as a worker of their group is back. Real workers, real `sma up`."""

from __future__ import annotations

import signal
import time
import uuid

import pytest
import requests

from tests.conftest import processes_with_arg, wait_for, wait_gone
from tests.test_job_control import STEPS, _output, _running_with
from tests.test_sma_up import Up, _assert_all_gone

pytestmark = pytest.mark.e2e
ENDED = ("Completed", "Failed", "Stopped")

SHORT = "import time\nprint('short begins', flush=True)\ntime.sleep(2)\nprint('short done')\n"
# steps with a checkpoint each, and a child in the job's process group to see it end
LONG = ("import subprocess\n"
        "subprocess.Popen(['sleep', {nap!r}])\n" + STEPS)


def _nap() -> str:
    return f"1000.{uuid.uuid4().int % 10**9:09d}"


def _long(n: int = 60, pause: float = 0.3) -> tuple[str, str]:
    nap = _nap()
    return LONG.format(nap=nap, n=n, pause=pause), nap


def _clean_log(text: str) -> None:
    assert "Traceback" not in text, text[-6000:]
    assert "WorkerLostError" not in text, text[-6000:]


def _suspended_lines(text: str, job_id: str) -> list[str]:
    return [line for line in text.splitlines()
            if job_id in line and "suspended: the worker shut down" in line]


def test_sigterm_finishes_short_jobs_suspends_long_ones_and_they_resume_on_restart(
        api, services, processes):
    group = f"g-{uuid.uuid4().hex[:6]}"
    env = {"SMA_SHUTDOWN_GRACE_SECONDS": "3", "SMA_MAX_ATTEMPTS": "1"}
    first = processes.worker(group, concurrency=3, env=env)
    content, nap = _long()
    long_rb = api.create_runbook(content=content, worker_group=group)
    short_rb = api.create_runbook(content=SHORT, worker_group=group)
    mine_rb = api.create_runbook(content=STEPS.format(n=60, pause=0.3), worker_group=group)
    mine = api.start(mine_rb["name"])
    _running_with(api, mine["id"], "step 1")
    assert api.post(f"/api/v1/jobs/{mine['id']}/suspend").status_code == 202
    api.wait(mine["id"], timeout=20, statuses=("Suspended",))
    long = api.start(long_rb["name"])
    _running_with(api, long["id"], "step 2")
    short = api.start(short_rb["name"])
    _running_with(api, short["id"], "short begins")
    assert processes_with_arg(nap)

    began = time.monotonic()
    first.proc.send_signal(signal.SIGTERM)  # the main process only, as Docker and `sma up` do
    wait_for(lambda: api.get(f"/api/v1/workers?group={group}").get_json()["items"] == [],
              timeout=3, what="the worker gone from the list")
    assert first.proc.wait(timeout=30) == 0
    stopped_after = time.monotonic() - began
    assert stopped_after < 3 + 2 + 10, stopped_after  # grace, kill grace, a margin

    assert api.get(f"/api/v1/jobs/{short['id']}").get_json()["status"] == "Completed"
    assert _output(api, short["id"])[-1] == "short done"
    job = api.get(f"/api/v1/jobs/{long['id']}").get_json()
    assert job["status"] == "Suspended", job
    assert "the worker" in job["status_reason"] and "shut down" in job["status_reason"]
    assert job["has_checkpoint"] is True
    assert job["status_history"][-1]["reason_code"] == "worker_shutdown"
    wait_gone(nap, timeout=5)  # its process group ended
    log = first.log_path.read_text()
    _clean_log(log)
    assert len(_suspended_lines(log, long["id"])) == 1, log[-4000:]
    assert api.get(f"/api/v1/jobs/{mine['id']}").get_json()["status"] == "Suspended"

    second = processes.worker(group, concurrency=2, env=env)  # registers: resumes them
    done = api.wait(long["id"], timeout=60, statuses=ENDED)
    assert done["status"] == "Completed", done
    assert done["worker"] == second.name
    # max_attempts 1: a shutdown does not count
    assert done["attempt"] == 2 and _causes(done) == ["first", "worker_shutdown"]
    lines = _output(api, long["id"])
    assert lines.count("step 0") == 1 and lines[-1] == "done"  # from the checkpoint
    resumed = [e for e in done["status_history"] if e["status"] == "Resuming"]
    assert [e["reason_code"] for e in resumed] == ["worker_shutdown"]
    seqs = [r["seq"] for r in api.records(long["id"])]
    assert seqs == list(range(1, len(seqs) + 1))
    user_suspended = api.get(f"/api/v1/jobs/{mine['id']}").get_json()
    assert user_suspended["status"] == "Suspended" and user_suspended["attempt"] == 1
    _clean_log(second.log_path.read_text())


def test_a_worker_of_the_group_already_online_takes_them_through_the_reaper(
        api, services, processes):
    group = f"g-{uuid.uuid4().hex[:6]}"
    leaving = processes.worker(group, concurrency=1,
                               env={"SMA_SHUTDOWN_GRACE_SECONDS": "0.5"})
    content, nap = _long(n=100, pause=0.2)
    rb = api.create_runbook(content=content, worker_group=group)
    job = api.start(rb["name"])
    _running_with(api, job["id"], "step 1")
    staying = processes.worker(group, concurrency=1)
    processes.beat(env={"SMA_MAX_ATTEMPTS": "1"})
    assert "done" not in _output(api, job["id"])
    leaving.proc.send_signal(signal.SIGTERM)
    assert leaving.proc.wait(timeout=30) == 0
    done = api.wait(job["id"], timeout=60, statuses=ENDED)
    assert done["status"] == "Completed", done
    assert done["worker"] == staying.name
    assert done["attempt"] == 2 and _causes(done) == ["first", "worker_shutdown"]
    assert _output(api, job["id"]).count("step 0") == 1
    resumed = [e for e in done["status_history"] if e["status"] == "Resuming"]
    assert [(e["actor"], e["reason_code"]) for e in resumed] == [("reaper", "worker_shutdown")]
    _clean_log(leaving.log_path.read_text())


def _a_worker_running_a_long_job(api, processes):
    """A worker of a group of its own, given a minute of grace, running a long job with
    checkpoints: (the worker, the job, the runbook's sleep to look for)."""
    group = f"g-{uuid.uuid4().hex[:6]}"
    worker = processes.worker(group, concurrency=1, env={"SMA_SHUTDOWN_GRACE_SECONDS": "60"})
    content, nap = _long(n=200, pause=0.3)
    rb = api.create_runbook(content=content, worker_group=group)
    job = api.start(rb["name"])
    _running_with(api, job["id"], "step 1")
    return worker, job, nap


def test_a_second_sigterm_suspends_at_once(api, services, processes):
    worker, job, nap = _a_worker_running_a_long_job(api, processes)
    worker.proc.send_signal(signal.SIGTERM)
    time.sleep(1)
    assert worker.proc.poll() is None  # its job has a minute to end
    began = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=20) == 0
    assert time.monotonic() - began < 15
    done = api.get(f"/api/v1/jobs/{job['id']}").get_json()
    assert done["status"] == "Suspended" and done["has_checkpoint"], done
    wait_gone(nap, timeout=5)
    _clean_log(worker.log_path.read_text())


def test_a_second_ctrl_c_ends_a_worker_at_once(api, services, processes):
    worker, job, nap = _a_worker_running_a_long_job(api, processes)
    worker.proc.send_signal(signal.SIGINT)
    time.sleep(1)
    began = time.monotonic()
    worker.proc.send_signal(signal.SIGINT)
    worker.proc.wait(timeout=20)
    assert time.monotonic() - began < 15
    wait_gone(nap, timeout=10)  # the job ended with it; the reaper resumes it, as when lost


# --- sma up ------------------------------------------------------------------------------

def _session(up: Up) -> requests.Session:
    token = up.wait_for("Admin token").rsplit(" ", 1)[-1].strip()
    up.wait_for("Press Ctrl-C")
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    s.token = token
    return s


def _runbook(s: requests.Session, url: str, content: str) -> str:
    name = f"rb-{uuid.uuid4().hex[:8]}"
    r = s.post(f"{url}/api/v1/runbooks", json={"name": name, "runbook_type": "python",
                                               "content": content})
    assert r.status_code == 201, r.text
    assert s.post(f"{url}/api/v1/runbooks/{name}/publish").status_code == 201
    return name


def _start(s: requests.Session, url: str, name: str) -> str:
    r = s.post(f"{url}/api/v1/runbooks/{name}/start", json={"parameters": {}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _job(s, url, job_id) -> dict:
    return s.get(f"{url}/api/v1/jobs/{job_id}").json()


def _says(s, url, job_id, line) -> bool:
    return line in s.get(f"{url}/api/v1/jobs/{job_id}/output").text.splitlines()


def test_ctrl_c_of_sma_up_suspends_and_the_next_sma_up_resumes(tmp_path):
    data = tmp_path / "data"
    up = Up(data, env={"SMA_SHUTDOWN_GRACE_SECONDS": "3"})
    try:
        s = _session(up)
        content, nap = _long(n=40, pause=0.3)
        long_rb, short_rb = _runbook(s, up.url, content), _runbook(s, up.url, SHORT)
        long, short = _start(s, up.url, long_rb), _start(s, up.url, short_rb)
        wait_for(lambda: _says(s, up.url, long, "step 2") and _says(
            s, up.url, short, "short begins"), timeout=60, what="both jobs running")
        up.proc.send_signal(signal.SIGINT)
        # the web service answers until the worker has gone; the worker leaves the list first
        wait_for(lambda: not [w for w in s.get(f"{up.url}/api/v1/workers").json()["items"]
                               if w["state"] == "online"], timeout=3,
                  what="no worker online")
        assert up.proc.wait(timeout=60) == 0
        _assert_all_gone(data)
        wait_gone(nap, timeout=5)
        up.wait_for("sma: stopping")
        while not up.lines.empty():
            up.seen.append(up.lines.get())
        printed = "".join(up.seen)
        _clean_log(printed)
        assert len(_suspended_lines(printed, long)) == 1, printed[-4000:]
    finally:
        up.kill()

    again = Up(data, env={"SMA_MAX_ATTEMPTS": "1"})
    try:
        again.wait_for("Press Ctrl-C")
        s2 = requests.Session()
        s2.headers["Authorization"] = s.headers["Authorization"]
        assert _job(s2, again.url, short)["status"] == "Completed"
        done = wait_for(lambda: (_job(s2, again.url, long)["status"] == "Completed"
                                  and _job(s2, again.url, long)), timeout=90,
                         what="the suspended job completed")
        assert done["attempt"] == 2 and _causes(done) == ["first", "worker_shutdown"]
        lines = s2.get(f"{again.url}/api/v1/jobs/{long}/output").text.splitlines()
        assert lines.count("step 0") == 1 and lines[-1] == "done"

        # a second Ctrl-C ends everything at once, whatever the grace period
        nap2 = _nap()
        busy = _start(s2, again.url, _runbook(s2, again.url, LONG.format(
            nap=nap2, n=500, pause=0.3)))
        wait_for(lambda: _says(s2, again.url, busy, "step 1"), timeout=60, what="running")
        again.proc.send_signal(signal.SIGINT)
        time.sleep(1)
        began = time.monotonic()
        again.proc.send_signal(signal.SIGINT)
        again.proc.wait(timeout=30)
        assert time.monotonic() - began < 10  # the default grace is 10 s, plus a margin
        _assert_all_gone(data)
        wait_gone(nap2, timeout=10)
    finally:
        again.kill()


def test_a_job_handed_over_as_the_worker_stops_goes_back_to_the_queue(api, services,
                                                                       monkeypatch):
    """A message the pool process gets after the shutdown began is not run there: it goes
    back to the group's queue, for the next worker (the job stays New)."""
    import redis

    from smacommon.workergroups import queue_name
    from smaworker import shutdown, tasks

    group = f"g-{uuid.uuid4().hex[:6]}"  # served by nobody here: the message stays queued
    monkeypatch.setattr(tasks.settings, "worker_group", group)
    rb = api.create_runbook(content="print('later')\n", worker_group=group)
    job = api.start(rb["name"])
    broker = redis.Redis.from_url(services["redis_url"])
    broker.delete(queue_name(group))
    shutdown.begin(30)
    try:
        assert tasks.run_job(job["id"]) == "not started: the worker is shutting down"
    finally:
        shutdown._DEADLINE.pack_into(shutdown._page, 0, 0.0)  # this test process goes on
    assert api.get(f"/api/v1/jobs/{job['id']}").get_json()["status"] == "New"
    sent = [m for m in broker.lrange(queue_name(group), 0, -1) if job["id"].encode() in m]
    broker.delete(queue_name(group))
    assert len(sent) == 1


def _causes(job: dict) -> list[str]:
    """Why each of the job's attempts started."""
    return [a["cause"] for a in job["attempts"]]
