"""A batch of a job's records into `job_streams`, as fast as each database takes them.

A record is the tuple StreamWriter queues: (job, seq, stream, time, text, value, attempt),
`value` its JSON text or None. PostgreSQL takes a batch by COPY. SQLite takes each run of
records sharing stream, time and attempt without a value (the lines a job prints, read
together) as multi-row INSERTs binding the shared columns once: about twice the rows a
second of one INSERT a row (bench/capture.py), SQLite's own work being most of output
capture's; records with a value go one INSERT a row.
"""

from __future__ import annotations

from functools import cache
from itertools import chain, groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection

_COLUMNS = "job_streams (job_id, seq, stream, time, text, value, attempt)"  # a record's order
SQLITE_INSERT = f"INSERT INTO {_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?)"
_PG_COPY = f"COPY {_COLUMNS} FROM STDIN"
# records in one multi-row INSERT: at most this many (2 * 256 + 4 variables, under the 999
# of SQLite before 3.32); a smaller rest goes as 128 + 64 + ..., so the driver's statement
# cache holds every shape
SQLITE_ROWS = 256
_SHARED = itemgetter(0, 2, 3, 5, 6)  # job, stream, time, value, attempt
_SEQ_TEXT = itemgetter(1, 4)


def insert_records(conn: Connection, rows: list[tuple]) -> None:
    """Insert `rows` in `conn`'s transaction, with its driver's own connection."""
    raw = conn.connection.driver_connection
    if conn.dialect.name != "sqlite":
        with raw.cursor() as cur, cur.copy(_PG_COPY) as copy:
            for row in rows:
                copy.write_row(row)
        return
    cursor = raw.cursor()
    try:
        insert_sqlite(cursor, rows)
    finally:
        cursor.close()


def insert_sqlite(cursor: Any, rows: list[tuple]) -> None:
    """`rows` by an sqlite3 cursor (see the module's docstring)."""
    valued: list[tuple] = []
    for (key, stream, stamp, value, attempt), run in groupby(rows, _SHARED):
        if value is not None:
            valued += run
            continue
        if valued:
            cursor.executemany(SQLITE_INSERT, valued)
            valued = []
        flat = list(chain.from_iterable(map(_SEQ_TEXT, run)))
        done, count = 0, len(flat) // 2
        while done < count:
            size = min(SQLITE_ROWS, 1 << ((count - done).bit_length() - 1))
            cursor.execute(_sqlite_values(size),
                           (key, stream, stamp, attempt, *flat[2 * done:2 * (done + size)]))
            done += size
    if valued:
        cursor.executemany(SQLITE_INSERT, valued)


@cache
def _sqlite_values(count: int) -> str:
    """The INSERT of `count` records sharing ?1-?4 (job, stream, time, attempt), each with
    its own seq and text after them, and no value."""
    return f"INSERT INTO {_COLUMNS} VALUES " + ",".join(
        f"(?1,?{5 + 2 * n},?2,?3,?{6 + 2 * n},NULL,?4)" for n in range(count))
