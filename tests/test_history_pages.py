"""Reading history: the jobs list pages by cursor over jobs created in the same instant
(the row-value seek of smaweb.pagination), with and without filters, on SQLite and on
PostgreSQL (SMA_TEST_DATABASE_URL); and a page of records, written without the schema
(smaweb.fastjson), is what JobStreamPageSchema dumps, record for record."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from smacommon.db import get_engine
from smacommon.models import Job, JobStream
from smacommon.schemas.job import JobStreamPageSchema
from smacommon.streams import STREAMS
from smaweb.streampage import CHUNK, STREAMED, in_key_order, stream_page
from tests.test_portal import sign_in

STATUSES = ("Completed", "Failed", "Stopped")


def _jobs(services, runbooks: list[str], instants: int, per_instant: int) -> list[dict]:
    """`instants` × `per_instant` jobs: each group created in the same microsecond."""
    start = datetime(2026, 11, 30, 12, 0, 0, 250000, tzinfo=UTC)
    rows = [{"id": uuid.uuid4(), "runbook_id": uuid.UUID(runbooks[n % len(runbooks)]),
             "status": STATUSES[n % len(STATUSES)], "parameters": {},
             "created_at": start + timedelta(seconds=n // per_instant),
             "modified_at": start, "started_by": "user:test"}
            for n in range(instants * per_instant)]
    with get_engine(services["database_url"]).begin() as conn:
        conn.execute(insert(Job), rows)
    return rows


def _walk(api, limit: int, **query) -> list[str]:
    """Every id the list gives, page by page by cursor."""
    page = api.get("/api/v1/jobs", query_string={**query, "limit": limit}).get_json()
    seen = [j["id"] for j in page["items"]]
    while page["next_cursor"]:
        page = api.get("/api/v1/jobs", query_string={**query, "limit": limit,
                                                     "cursor": page["next_cursor"]}).get_json()
        seen += [j["id"] for j in page["items"]]
    return seen


def _newest_first(rows: list[dict]) -> list[str]:
    return [str(r["id"]) for r in sorted(rows, key=lambda r: (r["created_at"], r["id"]),
                                         reverse=True)]


@pytest.mark.parametrize("limit", [1, 4, 7, 50])
def test_cursor_pages_over_ties(api, services, limit):
    """Pages that end inside a group of equal created_at lose and repeat no job, whatever
    the filter."""
    runbooks = [api.create_runbook(f"ties-{n}")["id"] for n in range(2)]
    rows = _jobs(services, runbooks, instants=5, per_instant=6)
    assert _walk(api, limit) == _newest_first(rows)
    assert _walk(api, limit, runbook="ties-1") == _newest_first(
        [r for r in rows if str(r["runbook_id"]) == runbooks[1]])
    assert _walk(api, limit, status="Failed") == _newest_first(
        [r for r in rows if r["status"] == "Failed"])
    assert _walk(api, limit, status="Failed,Stopped", runbook="ties-0") == _newest_first(
        [r for r in rows if r["status"] != "Completed" and str(r["runbook_id"]) == runbooks[0]])


def test_portal_jobs_pages_over_ties(api, services, client):
    """The portal's list shares the cursor: its pages, by the API's cursor, hold the jobs the
    API's pages hold, across a group of equal created_at."""
    runbooks = [api.create_runbook("ties-portal")["id"]]
    rows = _jobs(services, runbooks, instants=2, per_instant=60)  # the portal's page is 50
    first = api.get("/api/v1/jobs", query_string={"limit": 50}).get_json()
    sign_in(client)
    html = client.get("/jobs", query_string={"cursor": first["next_cursor"]})
    assert html.status_code == 200
    shown = re.findall(r'<tr id="job-([0-9a-f-]{36})"', html.get_data(as_text=True))
    assert [j["id"] for j in first["items"]] + shown == _newest_first(rows)[:100]


VALUES = [None, {"user": "ana", "nested": {"list": [1, 2.5, None, True, "é"]}}, [1, "two"],
          42, -1.25, "a string", True, False, {"big": 12345678901234567}]


def _records(services, job_id: uuid.UUID, count: int = len(STREAMS) * len(VALUES)
             ) -> list[dict]:
    """One record of every stream, of every kind of value, with text beyond ASCII, a masked
    secret, an empty line and a time without microseconds; a second attempt. (`count`
    records: that pattern again and again.)"""
    at = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    texts = ["plain", "naïve ✓ 日本語 \U0001f600", "password *** used", "", "tab\tand \"quotes\"",
             "line\u2028separator", "<script>&amp;</script>", "\\backslash"]
    rows = []
    for n in range(count):
        rows.append({"job_id": job_id, "seq": n + 1, "attempt": 1 if n < 30 else 2,
                     "stream": STREAMS[n % len(STREAMS)],
                     "time": at + timedelta(microseconds=0 if n % 3 == 0 else n * 1001),
                     "text": texts[n % len(texts)], "value": VALUES[n % len(VALUES)]})
    with get_engine(services["database_url"]).begin() as conn:
        conn.execute(insert(JobStream), rows)
    return rows


def _schema_dump(rows: list[dict], limit: int, more: bool) -> dict:
    """What the view answered before it left the schema out, through the same JSON."""
    items = [JobStream(**row) for row in rows[:limit]]
    dumped = JobStreamPageSchema().dump(
        {"items": items, "next_after_seq": items[-1].seq if more else None})
    return json.loads(json.dumps(dumped))


def test_streams_page_is_the_schema_dump(api, services):
    rb = api.create_runbook("records")
    job = api.start(rb["name"], worker_group="nobody")  # stays New: no worker writes to it
    rows = _records(services, uuid.UUID(job["id"]))
    whole = api.get(f"/api/v1/jobs/{job['id']}/streams").get_json()
    assert whole == _schema_dump(rows, len(rows), more=False)
    assert {r["stream"] for r in whole["items"]} == set(STREAMS)
    assert whole["items"][0]["time"] == "2026-11-30T12:00:00+00:00"
    assert whole["items"][1]["time"] == "2026-11-30T12:00:00.001001+00:00"
    page = api.get(f"/api/v1/jobs/{job['id']}/streams",
                   query_string={"after_seq": 5, "limit": 7}).get_json()
    assert page == _schema_dump(rows[5:], 7, more=True) and page["next_after_seq"] == 12
    errors = api.get(f"/api/v1/jobs/{job['id']}/streams",
                     query_string={"stream": "Error,Warning"}).get_json()
    assert errors == _schema_dump([r for r in rows if r["stream"] in ("Error", "Warning")],
                                  len(rows), more=False)


def test_big_streams_pages_are_the_schema_dump(api, services):
    """Pages of more than STREAMED records (on PostgreSQL read CHUNK at a time, each chunk
    written while the next arrives) are what the schema dumps, whether the one record more
    that says a next page exists opens a chunk of its own, falls in a chunk's middle, or is
    not there; with a stream filter too."""
    rb = api.create_runbook("many-records")
    job = api.start(rb["name"], worker_group="nobody")
    rows = _records(services, uuid.UUID(job["id"]), count=4 * STREAMED)
    total = len(rows)
    url = f"/api/v1/jobs/{job['id']}/streams"
    for after, limit, more in ((0, STREAMED + CHUNK, True),  # the one more: a chunk alone
                               (7, STREAMED + CHUNK // 2 + 3, True),  # in a chunk's middle
                               (total - STREAMED - 1, STREAMED + 1, False),  # exactly the rest
                               (total - STREAMED - 5, 4 * STREAMED, False)):  # fewer than asked
        page = api.get(url, query_string={"after_seq": after, "limit": limit})
        assert page.status_code == 200 and page.mimetype == "application/json"
        assert page.get_json() == _schema_dump(rows[after:], limit, more=more), (after, limit)
    errors = api.get(url, query_string={"stream": "Error,Warning", "limit": STREAMED + 1})
    kept = [r for r in rows if r["stream"] in ("Error", "Warning")]
    assert len(kept) > STREAMED + 1
    assert errors.get_json() == _schema_dump(kept, STREAMED + 1, more=True)
    assert errors.get_json()["next_after_seq"] == kept[STREAMED]["seq"]


CHUNKLESS_PAGE = """
import sys, uuid
from psycopg import capabilities
from sqlalchemy.orm import Session
from smacommon.db import get_engine
from smaweb.streampage import stream_page

print(f"chunked rows: {capabilities.has_stream_chunked()}", file=sys.stderr)
with Session(get_engine(sys.argv[1])) as session:
    sys.stdout.buffer.write(stream_page(session, uuid.UUID(sys.argv[2]), 3, int(sys.argv[3])))
"""


def test_big_page_without_chunked_rows_is_the_same_page(api, services):
    """Where libpq is older than 17 (no chunked rows; here psycopg's pure-Python build over
    the system's libpq) a big page is read at once: byte for byte the page read in chunks."""
    url = services["database_url"]
    if get_engine(url).dialect.name != "postgresql":
        pytest.skip("PostgreSQL's chunked reads (SMA_TEST_DATABASE_URL runs it)")
    from sqlalchemy.orm import Session

    rb = api.create_runbook("chunkless")
    job = api.start(rb["name"], worker_group="nobody")
    _records(services, uuid.UUID(job["id"]), count=STREAMED + 2 * CHUNK)
    limit = STREAMED + CHUNK
    with Session(get_engine(url)) as session:
        chunked = stream_page(session, uuid.UUID(job["id"]), 3, limit)
    done = subprocess.run([sys.executable, "-c", CHUNKLESS_PAGE, url, job["id"], str(limit)],
                          env={**os.environ, "PSYCOPG_IMPL": "python"}, capture_output=True,
                          timeout=60, cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0 and b"libpq" in done.stderr:
        pytest.skip(f"no system libpq for psycopg's pure-Python build: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    if b"chunked rows: False" not in done.stderr:
        pytest.skip("the system's libpq has chunked rows too (17 or newer)")
    assert done.stdout == chunked
    assert len(json.loads(chunked)["items"]) == limit


def test_a_connection_lost_in_the_middle_of_a_big_page_is_a_transient_error(api, services):
    """A big page's connection cut while its chunks come in (the server restarted, an
    administrator ended it) raises what the service answers 503 for (is_transient), and the
    session lets that connection go: the next page reads on a new one."""
    url = services["database_url"]
    engine = get_engine(url)
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's chunked reads (SMA_TEST_DATABASE_URL runs it)")
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from smacommon.db import is_transient
    from smaweb.streampage import _chunks, stream_statement

    rb = api.create_runbook("cut-page")
    job = api.start(rb["name"], worker_group="nobody")
    job_id = uuid.UUID(job["id"])
    at = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    long = "x" * 4000  # 40 MB in all: more than the sockets hold, the server still sends
    with engine.begin() as conn:
        conn.execute(insert(JobStream), [
            {"job_id": job_id, "seq": n, "stream": "Output", "time": at, "text": long}
            for n in range(1, 10_002)])
    session = Session(engine)
    conn = session.connection()
    backend = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    chunks = _chunks(conn, stream_statement(job_id, 0, 10_000, value_text=True), streamed=True)
    assert len(next(chunks)) == CHUNK
    with engine.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    with pytest.raises(Exception) as caught:
        for _ in chunks:
            pass
    assert is_transient(caught.value), repr(caught.value)
    try:
        session.close()
    except Exception as exc:  # what smaweb.extensions.Database._close does
        assert is_transient(exc)
        session.invalidate()
    with Session(engine) as again:
        page = json.loads(stream_page(again, job_id, 0, STREAMED + 1))
    assert len(page["items"]) == STREAMED + 1 and page["next_after_seq"] == STREAMED + 1
    assert page["items"][-1]["text"] == long


def test_key_order_setting_is_put_back_and_an_error_stays_the_error(services):
    """On PostgreSQL in_key_order turns sorting off for the page's query only; when that
    query fails, the caller sees its error, not the one of putting the setting back in the
    aborted transaction."""
    engine = get_engine(services["database_url"])
    if engine.dialect.name != "postgresql":
        pytest.skip("in_key_order sets nothing on SQLite (SMA_TEST_DATABASE_URL runs it)")
    import psycopg
    from sqlalchemy.exc import DBAPIError

    with engine.connect() as conn:
        with in_key_order(conn):
            assert conn.exec_driver_sql("SHOW enable_sort").scalar() == "off"
        assert conn.exec_driver_sql("SHOW enable_sort").scalar() == "on"
    with engine.connect() as conn, pytest.raises(DBAPIError) as caught, in_key_order(conn):
        conn.exec_driver_sql("SELECT 1 / 0")
    assert isinstance(caught.value.orig, psycopg.errors.DivisionByZero)


def test_streams_page_beyond_what_orjson_writes(api, services):
    """A value orjson refuses (an integer past 64 bits) still goes out, by the slow path,
    as the schema dumps it."""
    rb = api.create_runbook("huge")
    job = api.start(rb["name"], worker_group="nobody")
    rows = [{"job_id": uuid.UUID(job["id"]), "seq": 1, "stream": "Output", "text": "big",
             "time": datetime(2026, 11, 30, 12, 0, 0, 5, tzinfo=UTC),
             "value": {"n": 2**70, "list": [2**65]}}]
    with get_engine(services["database_url"]).begin() as conn:
        conn.execute(insert(JobStream), rows)
    resp = api.get(f"/api/v1/jobs/{job['id']}/streams")
    assert resp.status_code == 200
    assert resp.get_json() == _schema_dump([{**rows[0], "attempt": 1}], 1, more=False)
    assert resp.get_json()["items"][0]["value"]["n"] == 2**70


def test_jobs_page_is_the_schema_dump(api, services):
    """The jobs list, written without the schema, is what JobSchema dumped: every field,
    null or set, names looked up (runbook, version, a webhook's name for its id)."""
    from sqlalchemy import select, update
    from sqlalchemy.orm import Session

    from smacommon.schemas.job import JobSchema
    from smaweb.api.jobs import _with_names

    rb = api.create_runbook("listed")
    hook = api.post("/api/v1/webhooks", json={"name": "hook-listed", "runbook": "listed"})
    assert hook.status_code == 201, hook.get_json()
    ids = [api.start("listed", arguments=["a", str(n)], worker_group="nobody")["id"]
           for n in range(4)]
    engine = get_engine(services["database_url"])
    at = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == uuid.UUID(ids[0])).values(
            status="Failed", status_reason="exit 3", exception="Traceback\nValueError: x",
            worker="w1", exit_code=3, cpu_seconds=0.25, peak_memory_mb=31, engine_path="warm",
            start_time=at, end_time=at + timedelta(microseconds=1500),
            parent_job_id=uuid.UUID(ids[1]), attempt=2, arguments=None,
            parameters={"n": 1, "s": "é ✓", "secret": "***", "list": [1.5, None]},
            requirements={"dependencies": ["rich"], "requires_python": None,
                          "pinned": ["rich==13.0"], "python": "3.11", "key": "k1",
                          "extra": "not in the schema"},
            started_by=f"webhook:{hook.get_json()['id']}"))
        conn.execute(update(Job).where(Job.id == uuid.UUID(ids[2])).values(
            started_by=f"schedule:{uuid.uuid4()}", created_at=at))  # a deleted schedule
        conn.execute(update(Job).where(Job.id == uuid.UUID(ids[3])).values(
            is_test=True, runbook_version_id=None, test_content="print(2)\n"))  # a draft's
    with Session(engine) as session:
        jobs = list(session.scalars(select(Job).order_by(Job.created_at.desc(),
                                                         Job.id.desc())))
        expected = json.loads(json.dumps(JobSchema(many=True).dump(_with_names(session,
                                                                                jobs))))
    page = api.get("/api/v1/jobs").get_json()
    assert page == {"items": expected, "next_cursor": None}
    assert page["items"][-1]["created_at"] == "2026-11-30T12:00:00+00:00"
    assert {j["started_by_name"] for j in page["items"]} >= {"webhook:hook-listed"}
    assert rb["id"] in {j["runbook_id"] for j in page["items"]}
    first = api.get("/api/v1/jobs", query_string={"limit": 2}).get_json()
    assert first["items"] == expected[:2] and first["next_cursor"]
