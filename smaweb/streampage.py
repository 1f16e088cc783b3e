"""A page of a job's records (GET /api/v1/jobs/{id}/streams): the query, and its rows as
the dicts JobStreamSchema dumps, without the schema (smaweb.fastjson)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, DateTime, Select, select, type_coerce
from sqlalchemy.orm import Session

from smacommon.models import JobStream

# what JobStreamSchema dumps. `time` is read as the naive UTC the column stores (no
# per-row conversion to aware): the page is written with naive datetimes taken as UTC
_COLUMNS = (JobStream.seq, JobStream.attempt, JobStream.stream,
            type_coerce(JobStream.time, DateTime()).label("time"), JobStream.text,
            JobStream.value)


def stream_statement(job_id: uuid.UUID, after_seq: int, limit: int,
                     streams: Collection[str] | None = None,
                     where: Collection = ()) -> Select:
    """Up to `limit` + 1 records after `after_seq` (the one more says whether a next page
    exists): a seek on the primary key (job_id, seq), whatever the depth."""
    stmt = select(*_COLUMNS).where(JobStream.job_id == job_id, JobStream.seq > after_seq,
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


def stream_page(session: Session, stmt: Select, limit: int) -> dict:
    """The page: its records as dicts (`time` naive UTC, as smaweb.fastjson writes it) and
    `next_after_seq` (null on the last page). Run on the session's connection: Core rows,
    no ORM loading step."""
    conn = session.connection()
    with in_key_order(conn):
        rows = conn.execute(stmt).all()
    more = len(rows) > limit
    items = [{"seq": seq, "attempt": attempt, "stream": stream, "time": time, "text": text,
              "value": value} for seq, attempt, stream, time, text, value in rows[:limit]]
    return {"items": items, "next_after_seq": items[-1]["seq"] if more else None}
