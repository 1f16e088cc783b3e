"""The data of bench/history.py, generated inside PostgreSQL (INSERT ... SELECT over
generate_series: no row crosses the client): runbooks, jobs over a few runbooks and
statuses, `TIES` jobs sharing each created_at, and their stream records, one job with many.

The records are loaded as a restore would be: without the primary key (built once, sorted,
afterwards) and with the foreign key's triggers off for the session (every job_id is a job's,
by construction)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import insert, text
from sqlalchemy.engine import Engine

from smacommon.models import Runbook, RunbookVersion

RUNBOOKS = 5
TIES = 4  # jobs created in the same microsecond: the cursor's id breaks the tie
# one in ten jobs Failed, one in twenty Stopped, the rest Completed
STATUS = ("CASE WHEN i % 10 = 3 THEN 'Failed' WHEN i % 20 = 7 THEN 'Stopped' "
          "ELSE 'Completed' END")


def generate(engine: Engine, jobs: int, rows: int, big_lines: int) -> dict:
    """Fill the migrated, empty database; return what was made and how long each part took.
    The newest job is the one with `big_lines` records; the others share the rest."""
    took: dict[str, float] = {}
    now = datetime.now(UTC).replace(microsecond=0)
    runbook_ids = [uuid.uuid4() for _ in range(RUNBOOKS)]
    with engine.begin() as conn:
        conn.execute(insert(Runbook), [
            {"id": rid, "name": f"history-{n}", "runbook_type": "python", "tags": [],
             "description": "", "created_at": now, "modified_at": now}
            for n, rid in enumerate(runbook_ids)])
        conn.execute(insert(RunbookVersion), [
            {"id": uuid.uuid4(), "runbook_id": rid, "number": 1, "content": "print(1)\n",
             "content_sha256": "0" * 64, "parameters": [], "published_at": now,
             "published_by": "bench"} for rid in runbook_ids])
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(f"""
            INSERT INTO jobs (id, runbook_id, is_test, status, parameters, worker_group,
                              started_by, depth, parent_waits, attempt, exit_code,
                              engine_path, created_at, start_time, end_time, modified_at)
            SELECT gen_random_uuid(), (CAST(:runbooks AS uuid[]))[1 + i % {RUNBOOKS}], false,
                   {STATUS}, '{{}}'::jsonb, 'default', 'user:bench', 0, false, 1, 0, 'warm',
                   :now - make_interval(secs => (i / {TIES}) * 0.5),
                   :now - make_interval(secs => (i / {TIES}) * 0.5),
                   :now - make_interval(secs => (i / {TIES}) * 0.5 - 0.2),
                   :now - make_interval(secs => (i / {TIES}) * 0.5 - 0.2)
            FROM generate_series(0, :last) AS i"""),
            {"runbooks": runbook_ids, "now": now.replace(tzinfo=None), "last": jobs - 1})
    took["jobs_s"] = time.perf_counter() - started
    with engine.connect() as conn:
        big = conn.execute(text("SELECT id FROM jobs ORDER BY created_at DESC, id DESC "
                                "LIMIT 1")).scalar_one()
        pkey = conn.execute(text("SELECT conname FROM pg_constraint WHERE conrelid = "
                                 "'job_streams'::regclass AND contype = 'p'")).scalar_one()
    each = max(0, (rows - big_lines) // max(1, jobs - 1))
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))  # no FK triggers
        conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        conn.execute(text(f"ALTER TABLE job_streams DROP CONSTRAINT {pkey}"))
        # the big job: every stream, values now and then, masked secrets, text beyond ASCII
        conn.execute(text("""
            INSERT INTO job_streams (job_id, seq, attempt, stream, time, text, value)
            SELECT :big, s, 1,
                   CASE s % 100 WHEN 0 THEN 'Error' WHEN 1 THEN 'Warning' WHEN 2 THEN 'Verbose'
                        WHEN 3 THEN 'Debug' WHEN 4 THEN 'Progress' ELSE 'Output' END,
                   :now + make_interval(secs => s * 0.001),
                   CASE WHEN s % 7 = 0 THEN 'token *** used for line ' || s
                        ELSE 'line ' || s || ' — naïve ✓ 日本' END,
                   CASE WHEN s % 50 = 0 THEN jsonb_build_object('n', s, 'ok', true) END
            FROM generate_series(1, :lines) AS s"""),
            {"big": big, "now": now.replace(tzinfo=None), "lines": big_lines})
        took["big_job_streams_s"] = time.perf_counter() - started
        started = time.perf_counter()
        if each:
            conn.execute(text("""
                INSERT INTO job_streams (job_id, seq, attempt, stream, time, text, value)
                SELECT j.id, s, 1, 'Output', j.created_at, 'line ' || s, NULL
                FROM jobs AS j CROSS JOIN generate_series(1, :each) AS s
                WHERE j.id <> :big"""), {"big": big, "each": each})
        took["other_streams_s"] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute(text(f"ALTER TABLE job_streams ADD CONSTRAINT {pkey} "
                          "PRIMARY KEY (job_id, seq)"))
        took["streams_primary_key_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # what autovacuum would have done by the time anyone pages through history
        conn.execute(text("VACUUM (ANALYZE) jobs"))
        conn.execute(text("VACUUM (ANALYZE) job_streams"))
    took["vacuum_analyze_s"] = time.perf_counter() - started
    with engine.connect() as conn:
        stream_rows = conn.execute(text(
            "SELECT reltuples::bigint FROM pg_class WHERE relname = 'job_streams'")).scalar_one()
        size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    return {"jobs": jobs, "stream_rows_estimate": stream_rows, "big_job": str(big),
            "big_job_lines": big_lines, "lines_per_other_job": each,
            "runbooks": [f"history-{n}" for n in range(RUNBOOKS)],
            "database_mb": round(size / 2**20), "seconds": {k: round(v, 1)
                                                            for k, v in took.items()}}
