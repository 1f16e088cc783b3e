"""The Alembic migrations build exactly the schema the models describe, and go back down."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import make_url

from smacommon.db import Base, get_engine, utcnow
from smacommon.migrate import alembic_config, upgrade
from smacommon.models import Job, JobStream


def test_migrations_match_models(services):
    engine = get_engine(services["database_url"])
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_and_upgrade_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    upgrade(url)
    with get_engine(url).connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_records_written_before_attempts_are_of_attempt_1(services, tmp_path):
    """0013 on a database with jobs and records: every record is of attempt 1 (SQLite, and
    PostgreSQL when the tests run there)."""
    import uuid

    from sqlalchemy import MetaData, insert, select

    from tests.conftest import _postgres

    base = services["database_url"]
    url = (_postgres(base, f"{make_url(base).database}_m13", create=True)
           if base.startswith("postgresql") else f"sqlite:///{tmp_path / 'm.db'}")
    command.upgrade(alembic_config(url), "0012")
    engine = get_engine(url)
    tables = MetaData()
    tables.reflect(engine, only=("runbooks", "jobs", "job_streams"))
    runbook_id, job_id, now = uuid.uuid4(), uuid.uuid4(), utcnow().replace(tzinfo=None)
    key = (lambda u: u.hex) if url.startswith("sqlite") else (lambda u: u)  # reflected CHAR(32)
    with engine.begin() as conn:
        conn.execute(insert(tables.tables["runbooks"]).values(
            id=key(runbook_id), name="old", description="", runbook_type="python", tags=[],
            log_verbose=False, log_progress=False, log_debug=False, worker_group="default",
            created_at=now, modified_at=now))
        conn.execute(insert(tables.tables["jobs"]).values(
            id=key(job_id), runbook_id=key(runbook_id), is_test=False, status="Completed", parameters={},
            worker_group="default", started_by="user:x", attempt=1, created_at=now,
            modified_at=now))
        conn.execute(insert(tables.tables["job_streams"]), [
            {"job_id": key(job_id), "seq": n, "stream": "Output", "time": now, "text": f"line {n}"}
            for n in (1, 2)])
    engine.dispose()
    upgrade(url)
    engine = get_engine(url)
    with engine.connect() as conn:
        assert conn.execute(select(JobStream.seq, JobStream.attempt)
                            .where(JobStream.job_id == job_id)
                            .order_by(JobStream.seq)).all() == [(1, 1), (2, 1)]
        assert conn.execute(select(Job.checkpoint_at).where(Job.id == job_id)).scalar() is None
    engine.dispose()
    if base.startswith("postgresql"):
        _postgres(base, make_url(url).database, create=False)


def test_sqlite_keeps_job_records_without_rowid_and_they_survive_both_ways(tmp_path):
    """0021 rebuilds SQLite's job_streams WITHOUT ROWID with every record in it, and its
    downgrade rebuilds the rowid table with the same records."""
    import uuid

    from sqlalchemy import MetaData, insert, text

    url = f"sqlite:///{tmp_path / 'm.db'}"
    command.upgrade(alembic_config(url), "0020")
    engine = get_engine(url)
    tables = MetaData()
    tables.reflect(engine, only=("runbooks", "jobs", "job_streams"))
    runbook_id, job_id, now = uuid.uuid4().hex, uuid.uuid4().hex, utcnow().replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(insert(tables.tables["runbooks"]).values(
            id=runbook_id, name="old", description="", runbook_type="python", tags=[],
            log_verbose=False, log_progress=False, log_debug=False, worker_group="default",
            created_at=now, modified_at=now))
        conn.execute(insert(tables.tables["jobs"]).values(
            id=job_id, runbook_id=runbook_id, is_test=False, status="Completed", parameters={},
            worker_group="default", started_by="user:x", attempt=1, created_at=now,
            modified_at=now))
        conn.execute(insert(tables.tables["job_streams"]), [
            {"job_id": job_id, "seq": n, "attempt": 1, "stream": "Output", "time": now,
             "text": f"line {n}"} for n in range(1, 501)])
    engine.dispose()

    def table_sql_and_records():
        engine = get_engine(url)
        with engine.connect() as conn:
            sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'table' "
                                    "AND name = 'job_streams'")).scalar_one()
            records = conn.execute(text("SELECT seq, text FROM job_streams WHERE job_id = :j "
                                        "ORDER BY seq"), {"j": job_id}).all()
        engine.dispose()
        return sql, [tuple(r) for r in records]

    written = [(n, f"line {n}") for n in range(1, 501)]
    upgrade(url)
    sql, records = table_sql_and_records()
    assert sql.rstrip().upper().endswith("WITHOUT ROWID") and records == written
    command.downgrade(alembic_config(url), "0020")
    sql, records = table_sql_and_records()
    assert "ROWID" not in sql.upper() and records == written
    upgrade(url)
    sql, records = table_sql_and_records()
    assert sql.rstrip().upper().endswith("WITHOUT ROWID") and records == written
    with get_engine(url).connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
