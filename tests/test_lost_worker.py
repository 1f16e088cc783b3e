"""Lost workers are noticed in seconds (README, "How fast sma notices a lost worker"), with
the default heartbeat, lease and reaper interval: a worker killed is shown lost within 3
heartbeats and its job runs again on another within the lease plus one reaper pass; a
stopped worker's job is taken over without two runs writing into it; after a PostgreSQL
restart lost jobs run again within seconds while live ones are left alone.

The bounds are asserted with generous margins (the machine is shared); the measured times
are printed (pytest -s)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import update

from smacommon.db import get_engine
from smacommon.models import Job
from smacommon.settings import LOST_AFTER_HEARTBEATS, Settings, get_settings
from tests import private_pg
from tests.conftest import Api, WorkerProcess, wait_for
from tests.test_job_control import STEPS

pytestmark = pytest.mark.e2e

HEARTBEAT = Settings.model_fields["worker_heartbeat_seconds"].default
REAPER = Settings.model_fields["reaper_interval_seconds"].default
LEASE = LOST_AFTER_HEARTBEATS * HEARTBEAT  # the default lease
LOST_WITHIN = LOST_AFTER_HEARTBEATS * HEARTBEAT
RESUMED_WITHIN = LEASE + REAPER
MARGIN = 6.0  # for a loaded machine: starting the next run, slow polls
# the workers and beat of these tests run with the defaults, not the suite's short ones
DEFAULTS = {"SMA_WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT), "SMA_JOB_LEASE_SECONDS": str(LEASE),
            "SMA_REAPER_INTERVAL_SECONDS": str(REAPER)}

def _api(**settings) -> Api:
    """The API of the suite's database, judging workers with the default heartbeat."""
    from smaweb import create_app

    config = get_settings().model_copy(update={
        "worker_heartbeat_seconds": HEARTBEAT, "job_lease_seconds": LEASE,
        "reaper_interval_seconds": REAPER, **settings})
    return Api(create_app({"TESTING": True, "SMA_SETTINGS": config}).test_client())


def _job(api: Api, job_id: str) -> dict:
    return api.get(f"/api/v1/jobs/{job_id}").get_json()


def _worker_state(api: Api, name: str) -> str | None:
    items = api.get("/api/v1/workers").get_json()["items"]
    return next((w["state"] for w in items if w["name"] == name), None)


def _running(api: Api, job_id: str, attempt: int, text: str | None = None) -> bool:
    job = _job(api, job_id)
    if job["status"] != "Running" or job["attempt"] != attempt:
        return False
    return text is None or any(r["text"] == text for r in api.records(job_id))


def _assert_resumed_once(api: Api, job_id: str, n: int) -> None:
    """The first run's steps, then the second run's from the checkpoint on: at most the one
    step after the last checkpoint twice (at least once between checkpoints), numbered
    without a gap or a clash."""
    records = api.records(job_id)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    texts = [r["text"] for r in records if r["stream"] == "Output"]
    assert texts[-1] == "done"
    steps = [int(t.split()[1]) for t in texts[:-1]]
    breaks = [i for i in range(1, len(steps)) if steps[i] != steps[i - 1] + 1]
    assert len(breaks) <= 1, f"more than one restart in the output: {steps}"
    if breaks:
        last_first, first_second = steps[breaks[0] - 1], steps[breaks[0]]
        assert 0 <= last_first + 1 - first_second <= 1, steps
    assert steps[0] == 0 and steps[-1] == n - 1 and set(steps) == set(range(n))


@pytest.mark.parametrize("target", ["process group", "main process"])
def test_a_killed_worker_is_seen_lost_and_its_job_resumed_within_the_bound(
        services, processes, target):
    api = _api()
    group = f"lost-{uuid.uuid4().hex[:6]}"
    processes.beat(env=DEFAULTS)
    first = processes.worker(group, concurrency=1, env=DEFAULTS)
    rb = api.create_runbook(content=STEPS.format(n=60, pause=0.2), worker_group=group)
    job = api.start(rb["name"])
    wait_for(lambda: _running(api, job["id"], 1, "step 3"), 30, "the job running")
    second = processes.worker(group, concurrency=1, env=DEFAULTS)
    assert _worker_state(api, first.name) == "online"

    killed = time.monotonic()
    if target == "process group":
        first.kill()
    else:  # the pool process and the runbook end with it
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=15)
    wait_for(lambda: _worker_state(api, first.name) == "lost", LOST_WITHIN + MARGIN,
              "the killed worker shown lost")
    lost_after = time.monotonic() - killed
    wait_for(lambda: _job(api, job["id"])["attempt"] == 2, RESUMED_WITHIN + MARGIN,
              "the job resumed")
    resumed_after = time.monotonic() - killed
    wait_for(lambda: _running(api, job["id"], 2), 15, "the second run running")
    running_after = time.monotonic() - killed
    print(f"\n{target} killed: shown lost after {lost_after:.1f} s (bound {LOST_WITHIN:g}), "
          f"resumed after {resumed_after:.1f} s (bound {RESUMED_WITHIN:g}), running again "
          f"after {running_after:.1f} s")

    done = api.wait(job["id"], timeout=60)
    assert done["status"] == "Completed" and done["attempt"] == 2, done
    assert done["worker"] == second.name
    assert [e["status"] for e in done["status_history"] if e["actor"] == "reaper"] \
        == ["Resuming"]
    _assert_resumed_once(api, job["id"], 60)
    if target == "main process":
        with pytest.raises(ProcessLookupError):  # its pool process went with it
            wait_for(lambda: os.killpg(first.proc.pid, 0), 5, "the group gone")


def test_a_stopped_worker_is_taken_over_and_its_run_writes_nothing_more(
        services, processes, job_tmp):
    """SIGSTOP of a worker's whole process group for 20 s (the chaos benchmark's stall):
    its job's lease runs out and another worker resumes it. When the first wakes, its run
    finds the job no longer its own before writing anything, and ends its runbook (which
    ran on meanwhile, in its own session)."""
    api = _api()
    group = f"stall-{uuid.uuid4().hex[:6]}"
    processes.beat(env=DEFAULTS)
    first = processes.worker(group, concurrency=1, env=DEFAULTS)
    n = 200
    content = ("import os, time, uuid, smarunbook\n"
               "run = uuid.uuid4().hex\n"
               "start = smarunbook.last_checkpoint(0)\n"
               f"for i in range(start, {n}):\n"
               "    print(f'step {i}', flush=True)\n"
               f"    with open({str(job_tmp / 'runs')!r}, 'a') as fh:\n"
               "        fh.write(f'{run} {i}\\n')\n"
               "    smarunbook.checkpoint(i + 1)\n"
               "    time.sleep(0.15)\n"
               "print('done')\n")
    rb = api.create_runbook(content=content, worker_group=group)
    job = api.start(rb["name"])
    wait_for(lambda: _running(api, job["id"], 1, "step 3"), 30, "the job running")
    second = processes.worker(group, concurrency=1, env=DEFAULTS)

    os.killpg(first.proc.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        wait_for(lambda: _job(api, job["id"])["attempt"] == 2, RESUMED_WITHIN + MARGIN,
                  "the stopped worker's job resumed")
        taken_after = time.monotonic() - stopped
        wait_for(lambda: _running(api, job["id"], 2), 15, "the second run running")
        time.sleep(max(0.0, 20 - (time.monotonic() - stopped)))
    finally:
        os.killpg(first.proc.pid, signal.SIGCONT)
    print(f"\nworker stopped: its job taken over after {taken_after:.1f} s "
          f"(bound {RESUMED_WITHIN:g})")
    wait_for(lambda: "taken over" in first.log_path.read_text(), 15,
              "the first run giving the job up")

    def first_run_lines() -> int:
        runs: dict[str, int] = {}
        for line in (job_tmp / "runs").read_text().splitlines():
            runs[line.split()[0]] = runs.get(line.split()[0], 0) + 1
        return runs[next(iter(runs))]  # the first run wrote first

    time.sleep(1)
    ended_at = first_run_lines()
    done = api.wait(job["id"], timeout=90)
    assert done["status"] == "Completed" and done["attempt"] == 2, done
    assert done["worker"] == second.name
    assert first_run_lines() == ended_at, "the first run's runbook went on after it woke"
    _assert_resumed_once(api, job["id"], n)  # nothing of the first run after the takeover


def test_a_worker_whose_main_process_stalls_keeps_its_job(services, processes):
    """Only the worker's main process stopped (its heartbeat with it): it is shown lost, but
    its pool process still renews the job's lease, so the job is not run twice."""
    api = _api()
    group = f"main-{uuid.uuid4().hex[:6]}"
    processes.beat(env=DEFAULTS)
    workers = [processes.worker(group, concurrency=1, env=DEFAULTS) for _ in range(2)]
    rb = api.create_runbook(content=STEPS.format(n=100, pause=0.2), worker_group=group)
    job = api.start(rb["name"])
    wait_for(lambda: _running(api, job["id"], 1, "step 3"), 30, "the job running")
    # either worker may have taken it: stall the one that runs it
    first = next(w for w in workers if w.name == _job(api, job["id"])["worker"])
    os.kill(first.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: _worker_state(api, first.name) == "lost", LOST_WITHIN + MARGIN,
                  "the stalled worker shown lost")
        time.sleep(REAPER * 2)
        assert _running(api, job["id"], 1)
    finally:
        os.kill(first.proc.pid, signal.SIGCONT)
    wait_for(lambda: _worker_state(api, first.name) == "online", 15, "online again")
    done = api.wait(job["id"], timeout=60)
    assert done["status"] == "Completed" and done["attempt"] == 1, done
    assert done["worker"] == first.name


@pytest.fixture
def postgres():
    if not private_pg.available():
        pytest.skip("needs PostgreSQL's initdb and pg_ctl (and a postgres user as root)")
    server = private_pg.PrivatePostgres()
    server.start()
    from smacommon.migrate import upgrade

    upgrade(server.url)
    yield server
    get_engine(server.url).dispose()
    server.remove()


LINES = ("import time\n"
         "for i in range({n}):\n"
         "    print(f'line {{i}}', flush=True)\n"
         "    time.sleep(0.2)\n")


def test_after_a_postgresql_restart_lost_jobs_run_again_within_seconds(
        services, processes, postgres):
    """PostgreSQL stops (immediate) with two jobs running; one's worker is killed meanwhile.
    Once it is back, the live worker renews its job's lease (run once), and the lost job
    runs again well within 15 s, although both leases ran out during the outage."""
    env = {**DEFAULTS, "SMA_DATABASE_URL": postgres.url}
    api = _api(database_url=postgres.url)
    lost_group, live_group = f"pg-lost-{uuid.uuid4().hex[:6]}", f"pg-live-{uuid.uuid4().hex[:6]}"
    processes.beat(env=env)

    def worker(group: str) -> WorkerProcess:
        proc = WorkerProcess({**services["env"], **env},
                             services["tmp"] / f"worker-{uuid.uuid4().hex[:6]}.log",
                             concurrency=1, group=group)
        started.append(proc)
        return proc.start(postgres.url)

    started: list[WorkerProcess] = []
    try:
        _restart_with_jobs(api, postgres, worker, lost_group, live_group)
    finally:
        for proc in started:
            proc.stop()


def _restart_with_jobs(api, postgres, worker, lost_group: str, live_group: str) -> None:
    doomed, live = worker(lost_group), worker(live_group)
    lost_rb = api.create_runbook(content=LINES.format(n=60), worker_group=lost_group)
    live_rb = api.create_runbook(content=LINES.format(n=120), worker_group=live_group)
    lost_job, live_job = api.start(lost_rb["name"]), api.start(live_rb["name"])
    for job in (lost_job, live_job):
        wait_for(lambda job=job: _running(api, job["id"], 1, "line 2"), 30, "jobs running")
    spare = worker(lost_group)

    postgres.stop("immediate")
    doomed.kill()
    time.sleep(LEASE + 2)  # both leases run out
    postgres.start()
    back = time.monotonic()
    wait_for(lambda: _running(api, lost_job["id"], 2), 30, "the lost job running again")
    again_after = time.monotonic() - back
    print(f"\nPostgreSQL back: the lost job ran again after {again_after:.1f} s")
    assert again_after < 15

    done = api.wait(live_job["id"], timeout=90)
    assert done["status"] == "Completed" and done["attempt"] == 1, done
    texts = [r["text"] for r in api.records(live_job["id"]) if r["stream"] == "Output"]
    assert texts == [f"line {i}" for i in range(120)]
    done = api.wait(lost_job["id"], timeout=60)
    assert done["status"] == "Completed" and done["attempt"] == 2 \
        and done["worker"] == spare.name, done
    assert live.proc.poll() is None


def test_a_run_whose_lease_is_not_fresh_asks_before_it_writes(api, services, settings):
    """While the lease is fresh a run writes without asking; later it confirms the job is
    still its own (renewing the lease) in the write's transaction, and a job taken over
    meanwhile gets nothing more from it."""
    from sqlalchemy import select

    from smaworker.capture import StreamWriter
    from smaworker.runner import JobRunner

    rb = api.create_runbook()
    job_id = api.start(rb["name"], worker_group="nobody-serves-this")["id"]
    engine = get_engine(services["database_url"])
    key = uuid.UUID(job_id)
    jobs = Job.__table__

    def set_row(**values) -> None:
        with engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == key).values(**values))

    def lease():
        with engine.connect() as conn:
            return conn.execute(select(jobs.c.lease_expires_at).where(jobs.c.id == key)).scalar()

    set_row(status="Running", worker="w1", attempt=1, lease_expires_at=None)
    runner = JobRunner(job_id, settings, "w1")
    writer = StreamWriter(engine, key, batch_lines=10_000, transaction=runner.transaction,
                          still_ours=runner.still_ours)
    runner.lease.confirmed(time.monotonic())  # as the claim does
    writer.add("Output", "fresh")
    writer.flush()
    assert lease() is None  # not asked

    runner.lease.fresh_until = 0.0  # stalled longer than half a lease
    writer.add("Output", "stale, still ours")
    writer.flush()
    assert lease() is not None and runner.lease.fresh  # asked, renewed

    runner.lease.fresh_until = 0.0
    set_row(attempt=2, worker="w2")  # the reaper resumed it elsewhere meanwhile
    writer.add("Output", "stale, taken over")
    writer.flush()
    assert writer.superseded
    assert [r["text"] for r in api.records(job_id)] == ["fresh", "stale, still ours"]


def test_the_processes_that_run_jobs_end_idle_transactions(postgres):
    """On PostgreSQL, a transaction a run's process leaves idle (it was stopped) for a
    quarter lease is ended by the server, so it cannot commit after a takeover."""
    script = ("import sys, time\n"
              "from sqlalchemy import text\n"
              "from smacommon.db import get_engine, is_transient\n"
              "from smaworker.lease import limit_idle_transactions\n"
              "limit_idle_transactions(4)\n"
              "engine = get_engine(sys.argv[1])\n"
              "with engine.connect() as conn:\n"
              "    print(conn.execute(text('SHOW idle_in_transaction_session_timeout'))"
              ".scalar())\n"
              "try:\n"
              "    with engine.begin() as conn:\n"
              "        conn.execute(text('SELECT 1'))\n"
              "        time.sleep(1.5)\n"
              "        conn.execute(text('SELECT 2'))\n"
              "except Exception as exc:\n"
              "    while exc.__context__ is not None and not hasattr(exc, 'orig'):\n"
              "        exc = exc.__context__\n"  # (smacommon.db's rollback hook, issue 13)
              "    print('ended', type(exc.orig).__name__, is_transient(exc))\n")
    done = subprocess.run([sys.executable, "-c", script, postgres.url], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.split() == ["1s", "ended", "IdleInTransactionSessionTimeout", "True"], \
        done.stdout + done.stderr
