"""The worker's statements on the driver's cursor (smacommon.prepared) answer, bind and fail
exactly as the same statements through SQLAlchemy's Connection.execute, on the real
database of the run (SQLite, and PostgreSQL in make test's second pass)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from smacommon.db import get_engine, is_transient
from smacommon.models import Job, JobAttempt
from smacommon.prepared import execute, in_values, insert_all
from smacommon.services.attempts import _ADD_ATTEMPT
from smacommon.services.moves import CLOSE_ATTEMPT
from smaworker.claim import _READ_CLAIM, _READ_STATUS, _RENEW

_jobs = Job.__table__
_attempts = JobAttempt.__table__


@pytest.fixture
def job_id(api) -> uuid.UUID:
    """A New job (nobody serves its group) with parameters, a JSON column to read back."""
    rb = api.create_runbook(content="param([string]$Name)\n", runbook_type="powershell")
    return uuid.UUID(api.start(rb["name"], parameters={"Name": "ünï"},
                               worker_group="nobody-serves-this")["id"])


def _attempt(job_id: uuid.UUID, attempt: int) -> dict:
    return {"job_id": job_id, "attempt": attempt, "cause": "first", "reason": None,
            "worker": "w1", "started_at": datetime.now(UTC), "after_seq": 0,
            "ended_at": None, "status": None, "end_reason": None,
            "resumed_from_checkpoint_at": None}


def test_a_read_answers_what_sqlalchemy_answers(services, job_id):
    engine = get_engine(services["database_url"])
    with engine.connect() as conn:
        fast = execute(conn, _READ_CLAIM, {"job_id": job_id}).first()
        slow = conn.execute(_READ_CLAIM, {"job_id": job_id}).first()
    assert fast is not None and fast._fields == tuple(slow._fields)
    assert tuple(fast) == tuple(slow)
    # the types came through their processors: JSON, a UUID, an aware timestamp
    assert fast.job_parameters == {"Name": "ünï"}
    assert isinstance(fast.runbook_id, uuid.UUID)
    assert fast.job_created_at.tzinfo is not None


def test_writes_bind_as_sqlalchemy_binds(services, job_id):
    engine = get_engine(services["database_url"])
    lease = datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    with engine.begin() as conn:
        renewed = execute(conn, _RENEW, {"job_id": job_id, "run_attempt": 1, "lease": lease})
        assert renewed.rowcount == 0  # New is not an active status: the IN of literals holds
        conn.execute(text("UPDATE jobs SET status = 'Running', worker = 'w1' WHERE id = :id"),
                     {"id": job_id.hex if engine.dialect.name == "sqlite" else job_id})
        assert execute(conn, _RENEW, {"job_id": job_id, "run_attempt": 1,
                                      "lease": lease}).rowcount == 1
        execute(conn, _ADD_ATTEMPT, _attempt(job_id, 1))
        began = execute(conn, CLOSE_ATTEMPT, {"a_job_id": job_id, "a_ended_at": lease,
                                              "a_status": "Completed",
                                              "a_end_reason": None}).scalar()
    with engine.connect() as conn:
        row = conn.execute(select(_jobs.c.lease_expires_at).where(_jobs.c.id == job_id)).one()
        attempt = conn.execute(select(_attempts).where(_attempts.c.job_id == job_id)).one()
        status = execute(conn, _READ_STATUS, {"job_id": job_id}).first()
    assert row.lease_expires_at == lease
    assert (attempt.worker, attempt.status, attempt.ended_at) == ("w1", "Completed", lease)
    assert began == attempt.started_at
    assert (status.status, status.attempt, status.worker) == ("Running", 1, "w1")


def test_a_driver_error_is_the_error_sqlalchemy_raises(services, job_id):
    engine = get_engine(services["database_url"])
    with engine.begin() as conn:
        execute(conn, _ADD_ATTEMPT, _attempt(job_id, 1))
    caught = []
    for run in (lambda conn: conn.execute(_ADD_ATTEMPT, _attempt(job_id, 1)),
                lambda conn: execute(conn, _ADD_ATTEMPT, _attempt(job_id, 1))):
        with pytest.raises(IntegrityError) as exc, engine.begin() as conn:
            run(conn)
        caught.append(exc.value)
    slow, fast = caught
    assert type(fast.orig) is type(slow.orig) and fast.statement == slow.statement
    assert not is_transient(fast)
    with engine.connect() as conn:  # the transaction rolled back; the connection is fine
        assert execute(conn, _READ_STATUS, {"job_id": job_id}).first().status == "New"


def test_a_cut_connection_is_invalidated_and_transient(services, job_id):
    engine = get_engine(services["database_url"])
    if engine.dialect.name != "postgresql":
        pytest.skip("needs PostgreSQL (SMA_TEST_DATABASE_URL): a server that cuts a "
                    "connection; SQLite has none")
    with pytest.raises(OperationalError) as exc, engine.connect() as conn:
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        execute(conn, _READ_STATUS, {"job_id": job_id})
    assert exc.value.connection_invalidated and is_transient(exc.value)
    with engine.connect() as conn:  # the pool gives a new connection
        assert execute(conn, _READ_STATUS, {"job_id": job_id}).first().status == "New"


def test_a_session_runs_it_through_sqlalchemy(services, job_id):
    with Session(get_engine(services["database_url"])) as session:
        assert execute(session, _READ_STATUS, {"job_id": job_id}).first().status == "New"


def test_what_cannot_be_prepared_is_refused(services, job_id):
    engine = get_engine(services["database_url"])
    with engine.connect() as conn:
        with pytest.raises(ValueError, match="expanding IN"):
            execute(conn, select(_jobs.c.id).where(_jobs.c.status.in_(["New"])))
        with pytest.raises(ValueError, match="Python-side column defaults"):
            execute(conn, insert(_attempts).values(job_id=bindparam("job_id"), attempt=2),
                    {"job_id": job_id})
        with pytest.raises(KeyError, match="run_attempt"):
            execute(conn, _RENEW, {"job_id": job_id, "lease": None})
        # what can: literal IN values, every column named
        assert execute(conn, select(_jobs.c.id).where(
            in_values(_jobs.c.status, ["New"]), _jobs.c.id == bindparam("id")),
            {"id": job_id}).scalar() == job_id
    assert "job_id" in str(insert_all(_attempts, ["job_id", "attempt"]))


def test_it_begins_the_transaction_a_connection_would(services, job_id):
    """Run on a connection nobody began, it begins one, as Connection.execute does: the
    write is the connection's to commit or roll back, not committed by itself."""
    engine = get_engine(services["database_url"])
    moved = {"job_id": job_id, "run_attempt": 1, "lease": datetime.now(UTC)}
    with engine.connect() as conn:
        conn.execute(text("UPDATE jobs SET status = 'Running' WHERE id = :id"),
                     {"id": job_id.hex if engine.dialect.name == "sqlite" else job_id})
        conn.commit()
        assert execute(conn, _RENEW, moved).rowcount == 1
        assert conn.in_transaction()
        conn.rollback()
    with engine.connect() as conn:
        lease = conn.execute(select(_jobs.c.lease_expires_at).where(_jobs.c.id == job_id))
        assert lease.scalar() is None
