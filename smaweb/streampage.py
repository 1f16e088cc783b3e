"""A page of a job's records (GET /api/v1/jobs/{id}/streams): the query, and its rows as
the dicts JobStreamSchema dumps, without the schema (smaweb.fastjson).

On PostgreSQL a page of 10,000 records is the hottest read there is (bench/history.py), and
it is read from the driver's own rows: psycopg already gives the Python values (the naive
UTC `time`, see below), so SQLAlchemy's row objects add only time; and `value`, a JSONB
document, comes as its text and goes out as it is (an orjson Fragment), not parsed into
Python objects to be written back (JSONB holds only valid JSON: no NaN). SQLite's rows need
SQLAlchemy's conversions (its datetimes are strings) and its JSON may hold what a
Fragment must not, so they take the general path."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager

import orjson
from sqlalchemy import Connection, DateTime, Select, Text, cast, select, type_coerce
from sqlalchemy.orm import Session

from smacommon.models import JobStream

# what JobStreamSchema dumps. `time` is read as the naive UTC the column stores (no
# per-row conversion to aware): the page is written with naive datetimes taken as UTC
_COLUMNS = (JobStream.seq, JobStream.attempt, JobStream.stream,
            type_coerce(JobStream.time, DateTime()).label("time"), JobStream.text,
            JobStream.value)
# the same, `value` as its JSON text (PostgreSQL)
_TEXT_VALUE_COLUMNS = (*_COLUMNS[:-1], cast(JobStream.value, Text).label("value"))


def stream_statement(job_id: uuid.UUID, after_seq: int, limit: int,
                     streams: Collection[str] | None = None,
                     where: Collection = (), *, value_text: bool = False) -> Select:
    """Up to `limit` + 1 records after `after_seq` (the one more says whether a next page
    exists): a seek on the primary key (job_id, seq), whatever the depth. `value_text`:
    each record's value as its JSON text."""
    columns = _TEXT_VALUE_COLUMNS if value_text else _COLUMNS
    stmt = select(*columns).where(JobStream.job_id == job_id, JobStream.seq > after_seq,
                                  *where)
    if streams:
        stmt = stmt.where(JobStream.stream.in_(streams))
    return stmt.order_by(JobStream.seq).limit(limit + 1)


@contextmanager
def in_key_order(conn: Connection) -> Iterator[None]:
    """PostgreSQL walks the primary key in order for the page, never sorts. The planner
    takes seq and job_id as independent: seq > 500,000 looks rare (few jobs write that
    many) though it is half of a big job's records, and it would fetch all of those by
    bitmap and sort them for the first 1,000. The walk never reads more than the page (and
    the records a stream filter skips)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.exec_driver_sql("SET LOCAL enable_sort = off")  # this transaction only
    try:
        yield
    finally:
        conn.exec_driver_sql("SET LOCAL enable_sort = on")


def stream_page(session: Session, job_id: uuid.UUID, after_seq: int, limit: int,
                streams: Collection[str] | None = None, where: Collection = ()) -> dict:
    """The page: its records as dicts (`time` naive UTC, as smaweb.fastjson writes it) and
    `next_after_seq` (null on the last page). Run on the session's connection: Core rows,
    no ORM loading step; on PostgreSQL the driver's rows (see the module's docstring)."""
    conn = session.connection()
    raw = conn.dialect.name == "postgresql"
    stmt = stream_statement(job_id, after_seq, limit, streams, where, value_text=raw)
    with in_key_order(conn):
        result = conn.execute(stmt)
        if raw:
            rows = result.cursor.fetchall()
            result.close()
        else:
            rows = result.all()
    more = len(rows) > limit
    del rows[limit:]
    if raw:
        fragment = orjson.Fragment
        items = [{"seq": seq, "attempt": attempt, "stream": stream, "time": time, "text": text,
                  "value": None if value is None else fragment(value)}
                 for seq, attempt, stream, time, text, value in rows]
    else:
        items = [{"seq": seq, "attempt": attempt, "stream": stream, "time": time, "text": text,
                  "value": value} for seq, attempt, stream, time, text, value in rows]
    return {"items": items, "next_after_seq": items[-1]["seq"] if more else None}
