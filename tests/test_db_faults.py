"""Connections cut while the database server stays up (pg_terminate_backend, a proxy
dropping them, a failover): every shape the error takes counts as an outage, the
connection is replaced, and jobs and the API ride it out."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, PendingRollbackError, ProgrammingError

from smacommon.db import is_transient, make_engine

_NO_POSTGRES = ("needs PostgreSQL: set SMA_TEST_DATABASE_URL (e.g. "
                "postgresql://postgres@127.0.0.1:5432/postgres) to run it")


def _admin_url() -> str:
    base = os.environ.get("SMA_TEST_DATABASE_URL")
    if not base or not base.startswith("postgresql"):
        pytest.skip(_NO_POSTGRES)
    return base.replace("postgresql+psycopg://", "postgresql://", 1)


class Cutter:
    """Terminates the server processes of every connection to one database but its own,
    as an administrator or a failing proxy would, while the server stays up."""

    def __init__(self, admin_url: str, database: str) -> None:
        import psycopg

        self.database = database
        self.conn = psycopg.connect(admin_url, autocommit=True)
        self.cuts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def cut(self) -> int:
        killed = self.conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (self.database,)).fetchone()[0]
        self.cuts += killed
        return killed

    def start(self, every: tuple[float, float]) -> Cutter:
        """Cut again and again, at random intervals within `every` seconds."""
        import random

        def loop() -> None:
            while not self._stop.wait(random.uniform(*every)):
                self.cut()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.conn.close()


@pytest.fixture
def pg_database():
    """A database of its own on the PostgreSQL server of SMA_TEST_DATABASE_URL:
    (URL for psycopg, URL for SQLAlchemy, name)."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = _admin_url()
    name = f"sma_faults_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(database=name)
    yield (url.render_as_string(hide_password=False),
           url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False), name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def cutter(pg_database):
    cutter = Cutter(_admin_url(), pg_database[2])
    yield cutter
    cutter.stop()


# --- what counts as an outage, from a real connection cut mid-transaction ---------------

def test_a_driver_connection_cut_mid_transaction_is_an_outage_in_every_shape(
        pg_database, cutter):
    import psycopg

    conn = psycopg.connect(pg_database[0])
    conn.execute("CREATE TEMP TABLE t (id int)")  # in a transaction, as psycopg starts one
    cutter.cut()
    with pytest.raises(psycopg.Error) as lost:
        conn.execute("INSERT INTO t VALUES (1)")
    assert is_transient(lost.value), repr(lost.value)  # AdminShutdown or "connection lost"
    with pytest.raises(psycopg.Error) as closed:
        conn.execute("SELECT 1")
    assert is_transient(closed.value), repr(closed.value)  # "the connection is closed"
    # what SQLAlchemy's ping does to a connection it checks: psycopg 3.3 says "the
    # connection is lost", earlier ones "can't change 'autocommit' now ... UNKNOWN"
    with pytest.raises(psycopg.Error) as autocommit:
        conn.autocommit = True
    assert is_transient(autocommit.value), repr(autocommit.value)
    conn.close()


def test_an_engine_connection_cut_mid_transaction_is_an_outage_and_is_replaced(
        pg_database, cutter):
    engine = make_engine(pg_database[1])
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (id int PRIMARY KEY)"))
        # cut between two statements of one transaction: the rollback that follows must
        # not raise over the real error (it did: PendingRollbackError from a hook)
        with pytest.raises(Exception) as mid, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            cutter.cut()
            conn.execute(text("INSERT INTO t VALUES (2)"))
        assert is_transient(mid.value), repr(mid.value)
        assert not isinstance(mid.value, PendingRollbackError), repr(mid.value)
        # SQLAlchemy's own "Can't reconnect until invalid transaction is rolled back", met
        # by code that goes on using the transaction after the connection was lost
        with engine.connect() as conn:
            conn.begin()
            cutter.cut()
            with pytest.raises(Exception) as first:
                conn.execute(text("SELECT 1"))
            with pytest.raises(PendingRollbackError) as pending:
                conn.execute(text("SELECT 1"))
            assert is_transient(first.value) and is_transient(pending.value)
        # cut while COMMIT is on its way
        with pytest.raises(Exception) as at_commit, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (3)"))
            cutter.cut()
        assert is_transient(at_commit.value), repr(at_commit.value)
        # cut under a COPY sent on the driver's connection (as the output writer does)
        with pytest.raises(Exception) as copying, engine.begin() as conn:
            conn.execute(text("SELECT 1"))
            cutter.cut()
            raw = conn.connection.driver_connection
            with raw.cursor() as cur, cur.copy("COPY t (id) FROM STDIN") as copy:
                copy.write_row((4,))
        assert is_transient(copying.value), repr(copying.value)
        # idle connections in the pool, cut: the ping replaces them unseen
        cutter.cut()
        for _ in range(3):  # each time a new connection, the pool's invalidated ones gone
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (10) ON CONFLICT DO NOTHING"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
    finally:
        engine.dispose()


def test_a_connection_cut_while_sqlalchemy_first_looks_at_it_is_an_outage(
        pg_database, cutter):
    """The engine's first connection runs the dialect's `initialize` (server version,
    schema, ...) before anything else: cut there, the error must say the connection was
    lost (it said "This Connection is closed", which no caller took for an outage, so a
    worker's claim was not tried again), and the next connection must work."""
    from sqlalchemy import event

    engine = make_engine(pg_database[1])
    # before SQLAlchemy's own first-connect listener: the connection is up, then cut
    event.listen(engine.pool, "connect", lambda *_: cutter.cut(), insert=True, once=True)
    try:
        with pytest.raises(Exception) as first, engine.connect():
            pass
        assert is_transient(first.value), repr(first.value)
        assert "closed" not in str(first.value).splitlines()[0], repr(first.value)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        assert engine.dialect.server_version_info >= (9,)  # initialize ran in full after all
    finally:
        engine.dispose()


def test_a_bad_statement_or_bad_data_stays_a_fault_of_our_own(pg_database, tmp_path):
    import psycopg

    engine = make_engine(pg_database[1])
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (id int PRIMARY KEY)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(IntegrityError) as duplicate, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(ProgrammingError) as syntax, engine.begin() as conn:
            conn.execute(text("SELEC 1"))
        assert not is_transient(duplicate.value) and not is_transient(syntax.value)
    finally:
        engine.dispose()
    with psycopg.connect(pg_database[0]) as raw, pytest.raises(psycopg.Error) as undefined:
        raw.execute("SELECT * FROM no_such_table")
    assert not is_transient(undefined.value)
    # a bug raised while handling an outage stays a bug
    try:
        try:
            raise psycopg.OperationalError("the connection is lost")
        except psycopg.OperationalError:
            {}["missing"]
    except KeyError as bug:
        assert not is_transient(bug)


def test_sqlite_busy_is_transient_and_a_missing_table_is_not(tmp_path):
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (id int)")
    holder.execute("BEGIN IMMEDIATE")
    engine = make_engine(f"sqlite:///{path}")
    try:
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError) as locked:
            other.execute("BEGIN IMMEDIATE")
        assert is_transient(locked.value)
        other.close()
        holder.execute("ROLLBACK")
        with pytest.raises(Exception) as missing, engine.begin() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
        assert not is_transient(missing.value)
        with engine.begin() as conn:  # and the engine works on
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
    finally:
        holder.close()
        engine.dispose()


# --- the whole service while connections are cut again and again ------------------------

_STEPS = 8
_STEPPING = f"""
import time
import smarunbook

def main():
    for step in range(smarunbook.last_checkpoint(0), {_STEPS}):
        print(f"step {{step}}", flush=True)
        smarunbook.checkpoint(step + 1)
        time.sleep(0.1)
"""


def _retrying(call, answers: dict[int, int], timeout: float = 60.0):
    """Call the API until it answers other than 503 (an outage, said with Retry-After)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = call()
        answers[resp.status_code] = answers.get(resp.status_code, 0) + 1
        if resp.status_code != 503:
            return resp
        assert resp.headers.get("Retry-After"), resp.get_data(as_text=True)
        assert time.monotonic() < deadline, "the API said 503 for a minute"
        time.sleep(0.1)


def test_jobs_and_the_api_ride_out_connections_cut_again_and_again(
        services, pg_database, cutter):
    from smacommon.migrate import upgrade
    from smacommon.settings import get_settings
    from smaweb import create_app
    from tests.conftest import Api, BeatProcess, WorkerProcess

    _driver_url, url, _name = pg_database
    upgrade(url)
    settings = get_settings().model_copy(update={"database_url": url})
    api = Api(create_app({"TESTING": True, "SMA_SETTINGS": settings}).test_client())
    group = f"faults-{uuid.uuid4().hex[:6]}"
    env = {**services["env"], "SMA_DATABASE_URL": url}
    tmp = services["tmp"] / group
    tmp.mkdir()
    worker = WorkerProcess(env, tmp / "worker.log", concurrency=4, group=group).start(url)
    beat = BeatProcess(env, tmp).start()
    answers: dict[int, int] = {}
    try:
        rb = api.create_runbook(content=_STEPPING, worker_group=group)
        cutter.start(every=(0.05, 0.3))
        ids: list[str] = []
        for _ in range(8):
            resp = _retrying(lambda: api.post("/api/v1/jobs/batch", json={"jobs": [
                {"runbook": rb["name"], "worker_group": group} for _ in range(5)]}), answers)
            assert resp.status_code == 201, resp.get_json()
            ids += [job["id"] for job in resp.get_json()["items"]]
            time.sleep(0.3)
        deadline = time.monotonic() + 180
        while True:
            page = _retrying(lambda: api.get("/api/v1/jobs", query_string={
                "runbook": rb["name"], "limit": 100}), answers).get_json()["items"]
            done = {j["id"]: j for j in page if j["id"] in ids
                    and j["status"] in ("Completed", "Failed", "Stopped", "Suspended")}
            if len(done) == len(ids):
                break
            assert time.monotonic() < deadline, f"not done: {set(ids) - set(done)}"
            time.sleep(0.3)
        cutter.stop()
        assert cutter.cuts > 20, "the test cut too few connections to mean anything"
        assert 500 not in answers, answers
        failed = {i: (j["status"], j["status_reason"]) for i, j in done.items()
                  if j["status"] != "Completed"}
        assert not failed, failed
        for job_id, job in done.items():
            steps = [r["text"] for r in api.records(job_id) if r["stream"] == "Output"]
            assert sorted(set(steps)) == [f"step {i}" for i in range(_STEPS)], steps
            # a step runs again only when a later attempt resumes at its checkpoint
            assert len(steps) - _STEPS <= job["attempt"] - 1, (job, steps)
    finally:
        cutter.stop()
        beat.stop()
        worker.stop()
    for log in (worker.log_path.read_text(), beat.log_path.read_text()):
        assert "Traceback" not in log and "worker error" not in log, log[-3000:]
