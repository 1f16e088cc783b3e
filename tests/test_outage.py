"""The database goes away for a while (a restart, a failover, a cut link): jobs run on and
lose nothing, and the web service says 503 instead of failing."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from smacommon.embedded_redis import free_port
from tests.relay import Relay

_STEADY = """
import time
import smarunbook

def main():
    for i in range(60):
        print(f"line {i}", flush=True)
        if i == 15:
            smarunbook.checkpoint({"at": i})
        time.sleep(0.1)
"""

_ENDS_IN_OUTAGE = """
import time

def main():
    print("before", flush=True)
    time.sleep(1.5)
    print("after", flush=True)
"""

_FLOOD = """
import os, sys, time

def main(flag):
    print("waiting", flush=True)
    deadline = time.time() + 60
    while not os.path.exists(flag) and time.time() < deadline:
        time.sleep(0.05)
    out = sys.stdout
    for i in range({n}):
        out.write(f"flood {{i}}\\n")
"""


@pytest.fixture
def cut_worker(services, processes):
    """A worker whose only way to the database is a relay the test can cut."""
    database = urlsplit(services["database_url"])
    if not database.scheme.startswith("postgresql"):
        pytest.skip("a database outage needs a database over the network (PostgreSQL: set "
                    "SMA_TEST_DATABASE_URL); SQLite is a local file")
    relay = Relay("127.0.0.1", database.hostname, database.port or 5432)
    netloc = f"127.0.0.1:{relay.port}"
    if database.username:
        netloc = f"{database.username}@{netloc}"
    url = urlunsplit(database._replace(netloc=netloc))
    group = f"outage-{uuid.uuid4().hex[:6]}"
    worker = processes.worker(group, concurrency=1, env={"SMA_DATABASE_URL": url,
                                                         "SMA_DB_RETRY_SECONDS": "60"})
    yield relay, group, worker, url
    relay.restore()
    relay.stop()


def _start_then_cut(api, relay, group, content, line, parameters=None, timeout=30.0):
    """Start a job of `content` on the cut-off worker's group and cut the relay once the
    job has written `line` (so it runs, and the database has its first records)."""
    rb = api.create_runbook(content=content, worker_group=group)
    job = api.start(rb["name"], parameters)
    deadline = time.monotonic() + timeout
    while not any(r["text"] == line for r in api.records(job["id"])):
        assert time.monotonic() < deadline, f"job never wrote {line!r}: {api.records(job['id'])}"
        time.sleep(0.05)
    relay.cut()
    return job


def _assert_complete(api, job_id, texts):
    records = api.records(job_id)
    assert [r["text"] for r in records if r["stream"] == "Output"] == texts
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(1, len(seqs) + 1)), "records numbered with gaps or twice"


def test_a_job_runs_through_an_outage_and_loses_nothing(api, cut_worker):
    relay, group, worker, _url = cut_worker
    job = _start_then_cut(api, relay, group, _STEADY, "line 5")
    time.sleep(2)
    running = api.get(f"/api/v1/jobs/{job['id']}").get_json()
    assert running["status"] == "Running" and not running["has_checkpoint"]
    relay.restore()
    # the checkpoint the runbook took during the outage is written once it is over
    deadline = time.monotonic() + 10
    while not api.get(f"/api/v1/jobs/{job['id']}").get_json()["has_checkpoint"]:
        assert time.monotonic() < deadline, "the checkpoint taken in the outage was lost"
        time.sleep(0.05)
    done = api.wait(job["id"])
    assert done["status"] == "Completed", done
    assert done["attempt"] == 1  # it ran once, on this worker
    _assert_complete(api, job["id"], [f"line {i}" for i in range(60)])
    log = worker.log_path.read_text()
    assert "the database is unreachable" in log
    assert "the database answers again" in log


def test_the_end_of_a_job_is_recorded_once_the_database_answers(api, cut_worker):
    relay, group, worker, _url = cut_worker
    job = _start_then_cut(api, relay, group, _ENDS_IN_OUTAGE, "before")
    time.sleep(3)  # the runbook ends meanwhile
    assert api.get(f"/api/v1/jobs/{job['id']}").get_json()["status"] == "Running"
    relay.restore()
    done = api.wait(job["id"])
    assert done["status"] == "Completed", done
    _assert_complete(api, job["id"], ["before", "after"])
    assert "trying again to record that it ended (Completed)" in worker.log_path.read_text()


def test_output_during_an_outage_waits_in_bounded_memory(api, cut_worker, job_tmp):
    """More than the worker holds: it stops reading the runbook, which then waits on its
    own writes; every line still arrives, in order."""
    relay, group, worker, _url = cut_worker
    n = 120_000
    flag = job_tmp / "go"
    job = _start_then_cut(api, relay, group, _FLOOD.format(n=n), "waiting",
                          parameters={"flag": str(flag)})
    flag.touch()
    time.sleep(3)
    relay.restore()
    done = api.wait(job["id"], timeout=120)
    assert done["status"] == "Completed", done
    _assert_complete(api, job["id"], ["waiting", *(f"flood {i}" for i in range(n))])


def test_only_an_unreachable_database_counts_as_an_outage():
    import sqlite3

    import psycopg
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    from smacommon.db import is_transient

    assert is_transient(OperationalError("x", {}, sqlite3.OperationalError("database is locked")))
    assert is_transient(OperationalError("x", {}, psycopg.OperationalError("server closed")))
    assert not is_transient(OperationalError("x", {}, sqlite3.OperationalError("no such table")))
    assert not is_transient(IntegrityError("x", {}, psycopg.IntegrityError("duplicate key")))
    assert not is_transient(ProgrammingError("x", {}, psycopg.ProgrammingError("syntax")))
    assert not is_transient(ValueError("database is locked"))
    assert is_transient(OperationalError("x", {}, psycopg.errors.AdminShutdown("restarting")))
    assert is_transient(OperationalError("x", {}, psycopg.errors.DeadlockDetected("victim")))
    # an OperationalError of PostgreSQL's that says the statement itself is at fault
    too_big = psycopg.errors.ProgramLimitExceeded("index row size exceeds maximum")
    assert not is_transient(OperationalError("x", {}, too_big))


def test_leases_that_ran_out_in_an_outage_are_renewed_before_the_reaper_judges(
        api, cut_worker, processes):
    """The outage outlasts the job's lease (3 s here) and beat is cut off too: once the
    database answers, the worker renews the lease before beat's reaper looks, so the job
    is not resumed elsewhere and runs once."""
    relay, group, worker, url = cut_worker
    beat = processes.beat(env={"SMA_DATABASE_URL": url})
    job = _start_then_cut(api, relay, group, _STEADY, "line 5")
    time.sleep(5)
    relay.restore()
    done = api.wait(job["id"])
    assert done["status"] == "Completed" and done["attempt"] == 1, done
    _assert_complete(api, job["id"], [f"line {i}" for i in range(60)])
    beat_log = beat.log_path.read_text()
    assert "the reaper waits" in beat_log, beat_log[-2000:]


def test_a_worker_cut_off_longer_than_its_lease_gives_the_job_up_cleanly(
        api, cut_worker, processes):
    """Only the worker loses the database (a partition): beat finds its lease expired and
    another worker runs the job again. When the link is back, the first run learns it is
    no longer the job's and writes nothing more, so the second run's records stand alone,
    numbered without a gap or a clash."""
    relay, group, worker, _url = cut_worker
    job = _start_then_cut(api, relay, group, _STEADY, "line 5")
    processes.worker(group, concurrency=1)
    processes.beat()
    deadline = time.monotonic() + 30
    while api.get(f"/api/v1/jobs/{job['id']}").get_json()["attempt"] < 2:
        assert time.monotonic() < deadline, "the lost job was not resumed"
        time.sleep(0.1)
    time.sleep(1)
    relay.restore()  # the first run still holds lines the second run also writes
    done = api.wait(job["id"])
    assert done["status"] == "Completed" and done["attempt"] == 2, done
    records = api.records(job["id"])
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    texts = [r["text"] for r in records if r["stream"] == "Output"]
    assert texts[-60:] == [f"line {i}" for i in range(60)]  # the second run, whole
    assert len(texts) - 60 < 15  # the first run's lines from before the cut, no more
    deadline = time.monotonic() + 15
    while "taken over" not in worker.log_path.read_text():
        assert time.monotonic() < deadline, worker.log_path.read_text()[-3000:]
        time.sleep(0.2)


@pytest.mark.parametrize("url", [
    "sqlite:////nonexistent-folder-for-sma-tests/sma.db",
    "postgresql+psycopg://postgres@127.0.0.1:{port}/sma",
])
def test_the_api_answers_503_while_the_database_is_unreachable(services, url):
    from smacommon.settings import get_settings
    from smaweb import create_app
    from tests.conftest import ADMIN_TOKEN

    settings = get_settings().model_copy(
        update={"database_url": url.format(port=free_port())})
    client = create_app({"TESTING": True, "SMA_SETTINGS": settings}).test_client()
    resp = client.get("/api/v1/runbooks", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.headers["Retry-After"] == "5"
    assert "database is unreachable" in resp.get_json()["message"]
