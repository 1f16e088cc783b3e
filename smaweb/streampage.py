"""A page of a job's records (GET /api/v1/jobs/{id}/streams): the query, and the page as
the JSON JobStreamSchema would dump, without the schema (smaweb.fastjson).

On PostgreSQL a page of 10,000 records is the hottest read there is (bench/history.py), and
it is read from the driver's own rows as PostgreSQL sends them: psycopg hands them over
CHUNK at a time (libpq's chunked rows mode, binary), and each chunk becomes dicts and JSON
while PostgreSQL is still sending the next, so the two processes work side by side rather
than one after the other (a 10,000-record page: about 15 ms against 23). The driver already
gives the Python values (the naive UTC `time`, see below), so SQLAlchemy's row objects would
add only time; and `value`, a JSONB document, comes as its text and goes out as it is (an
orjson Fragment), not parsed into Python objects to be written back (JSONB holds only valid
JSON: no NaN). SQLite's rows need SQLAlchemy's conversions (its datetimes are strings) and
its JSON may hold what a Fragment must not, so they take the general path."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from itertools import islice

import orjson
from psycopg import capabilities
from sqlalchemy import Connection, DateTime, Select, Text, cast, select, type_coerce
from sqlalchemy.orm import Session

from smacommon.models import JobStream
from smaweb.fastjson import dumps

# records psycopg hands over at a time while PostgreSQL sends the rest of a page of more
# than STREAMED records (a smaller page is read at once: a chunked read's extra set-up, about
# a millisecond, costs more than it saves on a page of a few hundred)
CHUNK = 500
STREAMED = 2000

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
    the records a stream filter skips). The setting is the transaction's: it is put back
    after the page; after an error the transaction is lost anyway, and the error is what
    the caller sees (putting it back would fail in the aborted transaction and hide it)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.exec_driver_sql("SET LOCAL enable_sort = off")  # this transaction only
    yield
    conn.exec_driver_sql("SET LOCAL enable_sort = on")


def stream_page(session: Session, job_id: uuid.UUID, after_seq: int, limit: int,
                streams: Collection[str] | None = None, where: Collection = (),
                keep: list | None = None) -> bytes:
    """The page as JSON: its records (`time` naive UTC, as smaweb.fastjson writes it) and
    `next_after_seq` (null on the last page). Run on the session's connection and in its
    transaction: Core rows, no ORM loading step; on PostgreSQL the driver's rows in chunks
    (see the module's docstring). `keep`: where the page's rows and dicts go, for the
    caller to free once the answer is sent (a 10,000-record page's 100,000 objects take
    milliseconds to free)."""
    keep = [] if keep is None else keep
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        rows = conn.execute(stream_statement(job_id, after_seq, limit, streams, where)).all()
        more = len(rows) > limit
        del rows[limit:]
        items = [{"seq": seq, "attempt": attempt, "stream": stream, "time": time, "text": text,
                  "value": value} for seq, attempt, stream, time, text, value in rows]
        keep += (rows, items)
        return dumps({"items": items, "next_after_seq": items[-1]["seq"] if more else None})
    stmt = stream_statement(job_id, after_seq, limit, streams, where, value_text=True)
    parts: list[bytes] = []
    count, last = 0, 0
    with in_key_order(conn):
        for rows in _chunks(conn, stmt, limit > STREAMED):  # limit + 1 at most, all read
            count += len(rows)
            del rows[len(rows) - max(0, count - limit):]  # the one more is not on the page
            if rows:
                items = _items(rows)
                parts.append(dumps(items)[1:-1])  # the records, without [ ]
                last = rows[-1][0]
                keep += (rows, items)
    after = b"%d" % last if count > limit else b"null"
    return b'{"items":[' + b",".join(parts) + b'],"next_after_seq":' + after + b"}"


def _chunks(conn: Connection, stmt: Select, streamed: bool) -> Iterator[list[tuple]]:
    """The driver's rows of `stmt`: all at once, or `streamed` CHUNK at a time as PostgreSQL
    sends them, in binary (no text to parse for the integers and times). Chunks need libpq 17
    (psycopg-binary brings its own); with an older libpq the page is read at once."""
    if not (streamed and capabilities.has_stream_chunked()):
        result = conn.execute(stmt)
        yield result.cursor.fetchall()
        result.close()
        return
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        rows = cursor.stream(str(compiled), compiled.params, binary=True, size=CHUNK)
        while chunk := list(islice(rows, CHUNK)):
            yield chunk
    finally:
        cursor.close()


def _items(rows: list[tuple]) -> list[dict]:
    """PostgreSQL's rows as the records' dicts, each value its JSON text (a Fragment)."""
    fragment = orjson.Fragment
    return [{"seq": seq, "attempt": attempt, "stream": stream, "time": time, "text": text,
             "value": None if value is None else fragment(value)}
            for seq, attempt, stream, time, text, value in rows]
