"""Job control and no lost jobs: stop, suspend, resume, checkpoints, worker groups, the reaper.

Real worker and beat processes; a lost worker is a real `kill -9` of its process group.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from smacommon.db import get_engine
from smacommon.errors import IllegalTransition
from smacommon.models import Job
from smacommon.services.audit import Actor, act_as
from smacommon.services.jobs import stop_job, transition
from smacommon.states import JobStatus
from smacommon.workergroups import queue_name
from tests.conftest import end_group, wait_for, wait_gone

pytestmark = pytest.mark.e2e
TESTER = Actor("token:test", "api")

STEPS = ("import time, smarunbook\n"
         "start = smarunbook.last_checkpoint(0)\n"
         "for i in range(start, {n}):\n"
         "    print(f'step {{i}}', flush=True)\n"
         "    smarunbook.checkpoint(i + 1)\n"
         "    time.sleep({pause})\n"
         "print('done')\n")


def _output(api, job_id):
    return api.get(f"/api/v1/jobs/{job_id}/output").get_data(as_text=True).splitlines()


def _running_with(api, job_id, line):
    return wait_for(lambda: line in _output(api, job_id), what=f"{line!r} in the output")


# --- stop ---------------------------------------------------------------------------------

def test_stop_ends_the_whole_process_group(api, worker, job_tmp):
    pids, nap = job_tmp / "pids", f"1000.{uuid.uuid4().int % 10**9:09d}"
    content = (f"sleep {nap} & echo $! >> {pids}\n"
               f"(sleep {nap} & echo $! >> {pids}; wait) &\n"
               "trap '' TERM\n"  # the runbook itself ignores SIGTERM: SIGKILL follows
               "echo started\n"
               "wait\n")
    rb = api.create_runbook(content=content, runbook_type="bash")
    job = api.start(rb["name"])
    _running_with(api, job["id"], "started")
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, what="children")
    began = time.monotonic()
    resp = api.post(f"/api/v1/jobs/{job['id']}/stop")
    assert resp.status_code == 202
    assert resp.get_json()["status"] == "Stopping"
    done = api.wait(job["id"], timeout=15)
    assert done["status"] == "Stopped"
    assert time.monotonic() - began < 5.0
    wait_gone(nap, timeout=5)
    history = [(e["status"], e["actor"]) for e in api.get(
        f"/api/v1/jobs/{job['id']}").get_json()["status_history"]]
    assert [s for s, _ in history] == ["New", "Activating", "Running", "Stopping", "Stopped"]
    assert history[3][1].startswith("user:") and history[4][1].startswith("worker:")
    again = api.post(f"/api/v1/jobs/{job['id']}/stop")
    assert again.status_code == 409
    assert "Stopped" in again.get_json()["message"]


def test_stop_new_job_before_it_runs(api, services):
    rb = api.create_runbook(content="print('never')\n")
    job = api.start(rb["name"], worker_group="nobody-serves-this")
    resp = api.post(f"/api/v1/jobs/{job['id']}/stop")
    assert resp.status_code == 202
    assert resp.get_json()["status"] == "Stopped"


@pytest.mark.parametrize("action", ["stop", "suspend", "resume"])
def test_control_of_a_finished_job_is_409(api, worker, action):
    job = api.run("print(1)\n")
    resp = api.post(f"/api/v1/jobs/{job['id']}/{action}")
    assert resp.status_code == 409
    body = resp.get_json()
    assert "Completed" in body["message"] and body["code"] == 409


def test_control_of_unknown_job_is_404(api):
    resp = api.post(f"/api/v1/jobs/{uuid.uuid4()}/stop")
    assert resp.status_code == 404


# --- suspend, resume, checkpoints ---------------------------------------------------------

def test_suspend_and_resume_continue_from_the_checkpoint(api, worker):
    rb = api.create_runbook(content=STEPS.format(n=8, pause=0.3))
    job = api.start(rb["name"])
    _running_with(api, job["id"], "step 2")
    running = api.post(f"/api/v1/jobs/{job['id']}/resume")
    assert running.status_code == 409 and "Running" in running.get_json()["message"]
    assert api.post(f"/api/v1/jobs/{job['id']}/suspend").status_code == 202
    suspended = api.wait(job["id"], timeout=15, statuses=("Suspended",))
    assert suspended["has_checkpoint"] is True
    before = _output(api, job["id"])
    assert "done" not in before
    resp = api.post(f"/api/v1/jobs/{job['id']}/resume")
    assert resp.status_code == 202
    done = api.wait(job["id"], timeout=30)
    assert done["status"] == "Completed", done
    assert done["has_checkpoint"] is False  # removed once the job completed
    lines = _output(api, job["id"])
    marks = [line for line in lines if line.startswith("--- Attempt 2 — ")]
    assert len(marks) == 1 and marks[0].endswith(" after a user resumed it ---")  # a 2nd run
    lines.remove(marks[0])
    assert lines.count("step 0") == 1  # continued, not restarted
    assert [f"step {i}" for i in range(8)] == sorted(set(lines) - {"done"},
                                                     key=lambda s: int(s.split()[1]))
    assert lines[-1] == "done"
    seqs = [r["seq"] for r in api.records(job["id"])]
    assert seqs == list(range(1, len(seqs) + 1))
    statuses = [e["status"] for e in done["status_history"]]
    assert statuses[-6:] == ["Suspending", "Suspended", "Resuming", "Activating", "Running",
                             "Completed"]


def test_resume_without_checkpoint_starts_over(api, worker):
    rb = api.create_runbook(content="import time\nprint('begin', flush=True)\ntime.sleep(30)\n")
    job = api.start(rb["name"])
    _running_with(api, job["id"], "begin")
    api.post(f"/api/v1/jobs/{job['id']}/suspend")
    api.wait(job["id"], timeout=15, statuses=("Suspended",))
    api.post(f"/api/v1/jobs/{job['id']}/resume")
    wait_for(lambda: _output(api, job["id"]).count("begin") == 2, what="second start")
    api.post(f"/api/v1/jobs/{job['id']}/stop")
    assert api.wait(job["id"], timeout=15)["status"] == "Stopped"


def test_bash_checkpoint_helpers(api, worker):
    content = ('n=$(last_checkpoint); n=${n:-0}\n'
               'echo "from $n"\n'
               'checkpoint "$((n + 5))"\n'
               'sleep 30\n')
    rb = api.create_runbook(content=content, runbook_type="bash")
    job = api.start(rb["name"])
    _running_with(api, job["id"], "from 0")
    wait_for(lambda: api.get(f"/api/v1/jobs/{job['id']}").get_json()["has_checkpoint"])
    api.post(f"/api/v1/jobs/{job['id']}/suspend")
    api.wait(job["id"], timeout=15, statuses=("Suspended",))
    api.post(f"/api/v1/jobs/{job['id']}/resume")
    _running_with(api, job["id"], "from 5")
    api.post(f"/api/v1/jobs/{job['id']}/stop")
    api.wait(job["id"], timeout=15)


# --- races ------------------------------------------------------------------------------

def _running_job(api, services):
    rb = api.create_runbook(content="print(1)\n")
    job = api.start(rb["name"], worker_group="nobody-serves-this")
    job_id = uuid.UUID(job["id"])
    engine = get_engine(services["database_url"])
    with engine.begin() as conn:
        assert transition(conn, job_id, JobStatus.ACTIVATING, worker="w")
        assert transition(conn, job_id, JobStatus.RUNNING)
    return job_id, engine


def test_stop_and_completion_at_once_exactly_one_wins(api, services):
    for _ in range(10):
        job_id, engine = _running_job(api, services)
        barrier = threading.Barrier(2)
        results = {}

        def complete(barrier=barrier, engine=engine, job_id=job_id, results=results):
            barrier.wait()
            with engine.begin() as conn:
                results["complete"] = transition(conn, job_id, JobStatus.COMPLETED)

        def stop(barrier=barrier, engine=engine, job_id=job_id, results=results):
            barrier.wait()
            try:
                with Session(engine) as s, s.begin():
                    stop_job(act_as(s, TESTER), s.get(Job, job_id), "user:test")
                results["stop"] = True
            except IllegalTransition as exc:
                assert "Completed" in exc.message
                results["stop"] = False

        threads = [threading.Thread(target=complete), threading.Thread(target=stop)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(results.values()) == [False, True]
        with engine.connect() as conn:
            status = conn.execute(text("SELECT status FROM jobs WHERE id = :i"),
                                  {"i": job_id.hex if engine.dialect.name == "sqlite"
                                   else job_id}).scalar()
        assert status == ("Stopping" if results["stop"] else "Completed")


def test_stop_that_wins_over_the_exit_ends_stopped(api, services):
    from smaworker.capture import StreamWriter
    from smaworker.finish import finish
    from smaworker.runner import JobRunner

    job_id, engine = _running_job(api, services)
    with Session(engine) as s, s.begin():
        stop_job(act_as(s, TESTER), s.get(Job, job_id), "user:test")
    runner = JobRunner(str(job_id), __import__("smacommon.settings").settings.get_settings(),
                       "w")
    finish(runner, StreamWriter(engine, job_id), JobStatus.COMPLETED, exit_code=0)
    job = api.get(f"/api/v1/jobs/{job_id}").get_json()
    assert job["status"] == "Stopped"


def test_two_resumes_at_once_one_wins(app, api, worker):
    rb = api.create_runbook(content=STEPS.format(n=3, pause=5))
    job = api.start(rb["name"])
    _running_with(api, job["id"], "step 0")
    api.post(f"/api/v1/jobs/{job['id']}/suspend")
    api.wait(job["id"], timeout=15, statuses=("Suspended",))
    barrier = threading.Barrier(2)
    codes = []

    def resume():
        client = app.test_client()
        barrier.wait()
        codes.append(client.post(f"/api/v1/jobs/{job['id']}/resume",
                                 headers=api.headers).status_code)

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(codes) == [202, 409], codes
    api.post(f"/api/v1/jobs/{job['id']}/stop")
    api.wait(job["id"], timeout=20)


# --- lost workers, lost messages ----------------------------------------------------------

def test_killed_worker_job_resumes_on_another_from_checkpoint(api, services, processes):
    group = f"g-{uuid.uuid4().hex[:6]}"
    first = processes.worker(group, concurrency=1)
    rb = api.create_runbook(content=STEPS.format(n=10, pause=0.3), worker_group=group)
    job = api.start(rb["name"])
    _running_with(api, job["id"], "step 3")
    assert api.get(f"/api/v1/jobs/{job['id']}").get_json()["worker"] == first.name
    first.kill()  # kill -9 of the worker and its pool process
    second = processes.worker(group, concurrency=1)
    processes.beat()
    done = api.wait(job["id"], timeout=60)
    assert done["status"] == "Completed", done
    assert done["attempt"] == 2
    assert done["worker"] == second.name
    lines = _output(api, job["id"])
    assert lines.count("step 0") == 1  # resumed from the checkpoint, not from the start
    assert {f"step {i}" for i in range(10)} <= set(lines) and lines[-1] == "done"
    seqs = [r["seq"] for r in api.records(job["id"])]
    assert seqs == list(range(1, len(seqs) + 1))  # no duplicate, no missing seq
    reaped = [e for e in done["status_history"] if e["actor"] == "reaper"]
    assert [e["status"] for e in reaped] == ["Resuming"]
    workers = {w["name"]: w for w in api.get("/api/v1/workers").get_json()["items"]}
    assert workers[second.name]["state"] == "online"
    wait_for(lambda: api.get("/api/v1/workers").get_json()["items"] and {
        w["name"]: w for w in api.get("/api/v1/workers").get_json()["items"]
    }[first.name]["state"] == "lost", timeout=10, what="first worker shown lost")


def _is_running(api, job_id, attempt):
    job = api.get(f"/api/v1/jobs/{job_id}").get_json()
    return job["attempt"] == attempt and job["status"] == "Running" and job["has_checkpoint"]


def test_job_lost_too_often_is_suspended(api, services, processes):
    group = f"g-{uuid.uuid4().hex[:6]}"
    rb = api.create_runbook(content=STEPS.format(n=100, pause=0.2), worker_group=group)
    job = api.start(rb["name"])
    processes.beat()
    for attempt in range(1, 4):
        proc = processes.worker(group, concurrency=1)
        wait_for(lambda attempt=attempt: _is_running(api, job["id"], attempt), timeout=30,
                  what=f"attempt {attempt} running")
        proc.kill()
    done = api.wait(job["id"], timeout=30, statuses=("Suspended",))
    assert "lost 3 times" in done["status_reason"]
    assert done["has_checkpoint"] is True


def test_job_for_a_group_without_workers_waits_then_runs(api, services, processes):
    group = f"g-{uuid.uuid4().hex[:6]}"
    rb = api.create_runbook(content="print('ran')\n", worker_group=group)
    job = api.start(rb["name"])
    assert job["status"] == "New"
    assert f"No worker of group '{group}' is online" in job["status_reason"]
    processes.worker(group)
    done = api.wait(job["id"], timeout=30)
    assert done["status"] == "Completed" and done["status_reason"] is None
    assert _output(api, job["id"]) == ["ran"]


def test_message_lost_is_sent_again_by_the_reaper(api, services, processes):
    group = f"g-{uuid.uuid4().hex[:6]}"
    rb = api.create_runbook(content="print('ran')\n", worker_group=group)
    job = api.start(rb["name"])
    import redis

    # the queued message is gone
    redis.Redis.from_url(services["redis_url"]).delete(queue_name(group))
    processes.worker(group)
    processes.beat()
    assert api.wait(job["id"], timeout=30)["status"] == "Completed"


def test_two_beats_resume_a_lost_job_once(api, services, processes):
    group = f"g-{uuid.uuid4().hex[:6]}"
    first = processes.worker(group, concurrency=1)
    rb = api.create_runbook(content=STEPS.format(n=6, pause=0.3), worker_group=group)
    job = api.start(rb["name"])
    _running_with(api, job["id"], "step 1")
    first.kill()
    processes.beat()
    processes.beat()
    processes.worker(group, concurrency=2)
    done = api.wait(job["id"], timeout=60)
    assert done["status"] == "Completed" and done["attempt"] == 2
    statuses = [e["status"] for e in done["status_history"]]
    assert statuses.count("Resuming") == 1 and statuses.count("Activating") == 2


def test_redis_restart_loses_no_job_and_runs_none_twice(api, services, processes, tmp_path,
                                                         job_tmp, monkeypatch):
    from smacommon.embedded_redis import EmbeddedRedis, free_port
    from tests.conftest import _reset_settings

    redis_server = EmbeddedRedis(tmp_path / "redis", persist=False, port=free_port()).start()
    url = redis_server.url
    monkeypatch.setenv("SMA_REDIS_URL", url)
    _reset_settings()
    try:
        group = f"g-{uuid.uuid4().hex[:6]}"
        env = {"SMA_REDIS_URL": url}
        processes.worker(group, concurrency=2, env=env)
        processes.beat(env=env)
        marker = job_tmp / "runs"
        content = ("import os, time\n"
                   f"open({str(marker)!r}, 'a').write(os.environ['SMA_JOB_ID'] + '\\n')\n"
                   "time.sleep(2)\nprint('done')\n")
        rb = api.create_runbook(content=content, worker_group=group)
        ids = [api.start(rb["name"])["id"] for _ in range(6)]
        wait_for(lambda: sum(api.get(f"/api/v1/jobs/{i}").get_json()["status"] == "Running"
                              for i in ids) == 2, what="two jobs running")
        redis_server.stop()
        ids += [api.start(rb["name"])["id"] for _ in range(2)]  # queued while Redis is down
        time.sleep(1.5)
        redis_server.start()
        for job_id in ids:
            assert api.wait(job_id, timeout=90)["status"] == "Completed"
        runs = marker.read_text().split()
        assert sorted(runs) == sorted(ids)  # every job ran, and none twice
    finally:
        redis_server.stop()
        monkeypatch.undo()
        _reset_settings()


# --- concurrency, workers, retention -----------------------------------------------------

def test_max_concurrent_jobs_holds_extra_jobs(api, worker, job_tmp):
    log = job_tmp / "spans"
    content = ("import time\n"
               "start = time.time()\ntime.sleep(0.8)\n"
               f"open({str(log)!r}, 'a').write(f'{{start}} {{time.time()}}\\n')\n")
    rb = api.create_runbook(content=content, max_concurrent_jobs=1)
    assert rb["max_concurrent_jobs"] == 1
    ids = [api.start(rb["name"])["id"] for _ in range(3)]
    wait_for(lambda: any("free slot" in (api.get(f"/api/v1/jobs/{i}").get_json()
                                          ["status_reason"] or "") for i in ids),
              what="a job waiting for a slot")
    for job_id in ids:
        assert api.wait(job_id, timeout=60)["status"] == "Completed"
    spans = sorted(tuple(map(float, line.split())) for line in log.read_text().splitlines())
    assert len(spans) == 3
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end - 0.05  # never two at once


def test_workers_list(api, worker, services):
    from smacommon.db import utcnow

    _add_worker(get_engine(services["database_url"]), "old-one", utcnow() - timedelta(hours=1))
    body = api.get("/api/v1/workers").get_json()
    by_name = {w["name"]: w for w in body["items"]}
    mine = by_name[worker.name]
    assert mine["state"] == "online" and mine["worker_group"] == "default"
    assert "python" in mine["engines"] and "bash" in mine["engines"]
    assert by_name["old-one"]["state"] == "lost"
    lost = api.get("/api/v1/workers?state=lost").get_json()["items"]
    assert [w["name"] for w in lost] == ["old-one"]
    assert api.get("/api/v1/workers?state=sleeping").status_code == 400


def test_purge_deletes_old_finished_jobs_in_batches(api, worker, services):
    old = api.run("for i in range(50):\n    print(i)\n")
    recent = api.run("print('keep me')\n")
    rb = api.create_runbook(content="print(1)\n")
    waiting = api.start(rb["name"], worker_group="nobody-serves-this")
    engine = get_engine(services["database_url"])
    key = (lambda i: uuid.UUID(i).hex) if engine.dialect.name == "sqlite" else uuid.UUID
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET end_time = :t WHERE id = :i"),
                     {"t": "2000-01-01 00:00:00.000000" if engine.dialect.name == "sqlite"
                      else "2000-01-01", "i": key(old["id"])})
    resp = api.post("/api/v1/admin/purge-jobs", json={})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["jobs_deleted"] == 1 and body["records_deleted"] == 50
    assert api.get(f"/api/v1/jobs/{old['id']}").status_code == 404
    assert api.get(f"/api/v1/jobs/{recent['id']}").status_code == 200
    assert api.get(f"/api/v1/jobs/{waiting['id']}").status_code == 200
    everything = api.post("/api/v1/admin/purge-jobs", json={"older_than_days": 0}).get_json()
    assert everything["jobs_deleted"] >= 1
    assert api.get(f"/api/v1/jobs/{waiting['id']}").status_code == 200  # not finished
    bad = api.post("/api/v1/admin/purge-jobs", json={"older_than_days": -1})
    assert bad.status_code == 400


def test_status_history_of_a_completed_job(api, worker):
    job = api.run("print(1)\n")
    history = api.get(f"/api/v1/jobs/{job['id']}").get_json()["status_history"]
    assert [e["status"] for e in history] == ["New", "Activating", "Running", "Completed"]
    assert history[0]["actor"].startswith("user:")
    assert all(e["actor"] == f"worker:{worker.name}" for e in history[1:])
    assert [e["time"] for e in history] == sorted(e["time"] for e in history)


def test_timeout_while_stopping_still_ends_stopped(api, worker):
    rb = api.create_runbook(content="import time\nprint('x', flush=True)\ntime.sleep(60)\n",
                            timeout_seconds=30)
    job = api.start(rb["name"])
    _running_with(api, job["id"], "x")
    api.post(f"/api/v1/jobs/{job['id']}/stop")
    assert api.wait(job["id"], timeout=15)["status"] == "Stopped"


def test_environment_has_no_checkpoint_on_first_run(api, worker):
    job = api.run("import os\nprint(os.environ.get('SMA_CHECKPOINT_FILE', 'none'))\n")
    assert _output(api, job["id"]) == ["none"]
    assert os.environ.get("SMA_CHECKPOINT_FILE") is None


def test_stopping_job_whose_worker_is_lost_ends_stopped(api, services, processes):
    group = f"g-{uuid.uuid4().hex[:6]}"
    lost = processes.worker(group, concurrency=1)
    rb = api.create_runbook(content="import time\nprint('x', flush=True)\ntime.sleep(60)\n",
                            worker_group=group)
    job = api.start(rb["name"])
    _running_with(api, job["id"], "x")
    lost.kill()
    assert api.post(f"/api/v1/jobs/{job['id']}/stop").get_json()["status"] == "Stopping"
    processes.beat()
    done = api.wait(job["id"], timeout=30)
    assert done["status"] == "Stopped"
    assert "was lost while stopping" in done["status_reason"]


def test_sma_worker_command_serves_its_group(api, services, tmp_path):
    import subprocess
    import sys

    group = f"g-{uuid.uuid4().hex[:6]}"
    rb = api.create_runbook(content="print('served')\n", worker_group=group)
    job = api.start(rb["name"])
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "smacli.main", "worker", "--group", group,
                             "--concurrency", "1"], env={**os.environ, **services["env"]},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        done = api.wait(job["id"], timeout=60)
        assert done["status"] == "Completed"
        workers = api.get(f"/api/v1/workers?group={group}").get_json()["items"]
        assert len(workers) == 1 and workers[0]["concurrency"] == 1
    finally:
        end_group(proc)
        log.close()


def _add_worker(engine, name, heartbeat, group="linux"):
    from smacommon.models import Worker

    with engine.begin() as conn:
        conn.execute(Worker.__table__.insert().values(
            name=name, worker_group=group, engines=[], concurrency=1, version="x",
            started_at=heartbeat, heartbeat_at=heartbeat))


def test_reaper_forgets_workers_silent_for_a_day(api, services):
    from smacommon.db import utcnow
    from smacommon.settings import get_settings
    from smaworker.reaper import reap

    engine = get_engine(services["database_url"])
    _add_worker(engine, "ancient", utcnow() - timedelta(days=2))
    _add_worker(engine, "recent", utcnow())
    done = reap(engine, get_settings(), lambda job_id, group: None)
    assert done["workers_forgotten"] == 1
    names = [w["name"] for w in api.get("/api/v1/workers").get_json()["items"]]
    assert "ancient" not in names and "recent" in names


def test_reaper_clears_a_no_worker_reason_by_its_code_once_one_is_online(api, services):
    """The reaper decides by jobs.waiting_for, not by the reason's text: a worker that joined
    (busy, so it has not claimed the job yet) clears "no worker", a slot reason stays."""
    from smacommon.db import utcnow
    from smacommon.settings import get_settings
    from smaworker.reaper import reap

    group = f"g-{uuid.uuid4().hex[:6]}"
    rb = api.create_runbook(content="print(1)\n", worker_group=group)
    no_worker, for_slot = api.start(rb["name"]), api.start(rb["name"])
    assert no_worker["status_reason"].startswith("No worker of group")
    engine = get_engine(services["database_url"])
    old = utcnow() - timedelta(minutes=5)
    slot = "Waiting for a free slot: No worker of group is a runbook name here."
    jobs = Job.__table__
    with engine.begin() as conn:  # both waited long; one as the runner leaves a full runbook
        conn.execute(jobs.update().values(modified_at=old))
        conn.execute(jobs.update().where(jobs.c.id == uuid.UUID(for_slot["id"]))
                     .values(status_reason=slot, waiting_for="slot"))
    _add_worker(engine, f"busy-{group}", utcnow(), group=group)
    time.sleep(1.1)  # this process remembers "no worker" for a second (no_worker_reason)
    sent = []
    assert reap(engine, get_settings(), lambda job_id, g: sent.append(job_id))["requeued"] == 2
    assert sorted(sent) == sorted([no_worker["id"], for_slot["id"]])
    assert api.get(f"/api/v1/jobs/{no_worker['id']}").get_json()["status_reason"] is None
    assert api.get(f"/api/v1/jobs/{for_slot['id']}").get_json()["status_reason"] == slot


def test_admin_configuration(api, worker, client):
    conf = api.get("/api/v1/admin/configuration").get_json()
    assert conf == {"job_retention_days": 90, "max_job_records": None}
    bad = api.put("/api/v1/admin/configuration", json={"job_retention_days": 0})
    assert bad.status_code == 400 and "job_retention_days" in bad.get_json()["message"]
    assert api.put("/api/v1/admin/configuration", json={"color": "red"}).status_code == 400
    changed = api.put("/api/v1/admin/configuration",
                      json={"job_retention_days": 30, "max_job_records": 50})
    assert changed.get_json() == {"job_retention_days": 30, "max_job_records": 50}
    audit = api.get("/api/v1/audit?limit=5").get_json()["items"]
    assert audit[0]["action"] == "configuration.update"
    assert audit[0]["details"] == {"job_retention_days": 30, "max_job_records": 50}
    # workers read it within SMA_CONFIG_CACHE_SECONDS (10 s; 0 in the tests)
    deadline = time.monotonic() + 20
    while True:
        job = api.run("for i in range(500):\n    print(i)\n")
        if job["status"] == "Failed" or time.monotonic() > deadline:
            break
    assert job["status"] == "Failed" and "limit of 50 records" in job["status_reason"]
    assert api.run("print('short')\n")["status"] == "Completed"
    reader = api.post("/api/v1/tokens", json={"name": "r", "role": "author"}).get_json()
    denied = client.get("/api/v1/admin/configuration",
                        headers={"Authorization": f"Bearer {reader['token']}"})
    assert denied.status_code == 403
    api.put("/api/v1/admin/configuration", json={"max_job_records": None})
