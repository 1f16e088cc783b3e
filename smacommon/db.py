"""Engines, sessions and the after-commit hook shared by the web service and the workers."""

from __future__ import annotations

import itertools
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, DateTime, Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from smacommon.outages import is_transient as is_transient  # where callers look for it
from smacommon.outages import on_engine_error

_lock = threading.Lock()
_engines: dict[str, Engine] = {}


class Base(DeclarativeBase):
    """Declarative base of every model."""


class UTCDateTime(TypeDecorator):
    """A timestamp stored as naive UTC and always read back timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# How long a writer waits between tries for SQLite's write lock before it leaves the waiting
# to SQLite's busy handler: short at first, about 70 ms in all. SQLite's own handler sleeps
# 1, 2, 5, 10, 15... ms between tries, so under steady contention (every job writes three
# times) the lock often stood free while its waiters slept.
_SQLITE_SPINS = (0.0002,) * 10 + (0.0005,) * 10 + (0.001,) * 20 + (0.002,) * 20
_SQLITE_BUSY_MS = 30000
_SQLITE_NAP = 0.005  # between tries after the spins, when the wait must not block (gevent)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
    cur.close()


def _sqlite_begin(conn) -> None:
    # pysqlite's own transaction handling is off (isolation_level=None), so we say how each
    # transaction starts. In WAL mode a deferred transaction that writes can fail at once
    # with "database is locked" (SQLITE_BUSY_SNAPSHOT: another writer committed after it
    # began reading; busy_timeout does not help), even for a single UPDATE. So every
    # transaction starts IMMEDIATE, and waits its turn, unless it is marked read-only
    # (`reading`), which starts deferred and never holds the write lock.
    if conn.get_execution_options().get("sqlite_deferred"):
        conn.exec_driver_sql("BEGIN")
        return
    raw = conn.connection.driver_connection
    raw.execute("PRAGMA busy_timeout=0")  # for the tries below; other statements keep it
    try:
        if _cooperative():
            # under gevent (the web service) SQLite's busy handler would sleep in C and
            # freeze every greenlet of the process: the whole wait is tries and patched sleeps
            give_up = time.monotonic() + _SQLITE_BUSY_MS / 1000
            spins = itertools.chain((0.0, *_SQLITE_SPINS), itertools.repeat(_SQLITE_NAP))
            for delay in spins:
                if delay:
                    time.sleep(delay)
                if _try_begin(raw, last=time.monotonic() >= give_up):
                    return
        for delay in (0.0, *_SQLITE_SPINS):
            if delay:
                time.sleep(delay)
            if _try_begin(raw):
                return
    finally:
        raw.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
    raw.execute("BEGIN IMMEDIATE")  # a long wait: SQLite's busy handler takes it from here


def _try_begin(raw: sqlite3.Connection, last: bool = False) -> bool:
    """BEGIN IMMEDIATE without waiting: False when another writer holds the lock."""
    try:
        raw.execute("BEGIN IMMEDIATE")
        return True
    except sqlite3.OperationalError as exc:
        if last or ("locked" not in str(exc) and "busy" not in str(exc)):
            raise
        return False


def _cooperative() -> bool:
    """Whether time.sleep yields to other greenlets (gevent has patched this process)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("time")


def reading(session: Session) -> Session:
    """Mark the session's next transaction read-only: on SQLite it starts deferred."""
    session.connection(execution_options={"sqlite_deferred": True})
    return session


def make_engine(url: str) -> Engine:
    """Create an engine with the settings each backend needs for many processes at once."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    # a connection the server dropped is invalidated, so the next transaction gets a new one
    event.listen(engine, "handle_error", on_engine_error)
    event.listen(engine, "handle_error", _commit_failed)
    event.listen(engine, "begin", _began)
    event.listen(engine, "commit", _committing)
    event.listen(engine, "rollback", _forget_pending)
    event.listen(engine.pool, "checkin", _checked_in)
    return engine


def get_engine(url: str) -> Engine:
    """One engine per URL per process."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


def dispose_engines() -> None:
    """Drop pooled connections (after fork, at shutdown)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)
        _engines.clear()


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A Core connection for reads only (deferred transactions on SQLite)."""
    with engine.connect() as conn:
        yield conn.execution_options(sqlite_deferred=True)


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


def on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's current transaction has committed."""
    session.info.setdefault("sma_after_commit", []).append(callback)


_PENDING = "sma_on_commit"
_COMMITTING = "sma_committing"  # (the callbacks of a COMMIT sent, not yet known to be done)


def when_committed(target: Session | Connection, callback: Callable[[], None]) -> None:
    """Run `callback` once the transaction `target` is in has committed, never if it rolls
    back or its COMMIT fails (for a Connection: when it goes back to the pool or begins its
    next transaction, whichever comes first: at once for `engine.begin()`)."""
    if isinstance(target, Session):
        on_commit(target, callback)
    else:
        target.info.setdefault(_PENDING, []).append(callback)


def _committing(conn: Connection) -> None:
    """COMMIT is about to be sent: its callbacks wait until it is known to have succeeded
    (SQLAlchemy has no event after a Connection's commit: see `_checked_in`, `_began`)."""
    pending = conn.info.pop(_PENDING, None)
    if pending:
        conn.info.setdefault(_COMMITTING, []).extend(pending)


def _run(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a callback must never stand in the way of the next work
            logging.getLogger(__name__).exception("after-commit callback failed")


def _checked_in(dbapi_connection, record) -> None:
    """Back in the pool: a COMMIT sent on it succeeded, unless it was lost meanwhile."""
    callbacks = record.info.pop(_COMMITTING, None)
    if callbacks and dbapi_connection is not None:
        _run(callbacks)


def _began(conn: Connection) -> None:
    """A new transaction on a connection kept open: the last one's COMMIT succeeded."""
    if conn.invalidated or conn.closed:
        return
    callbacks = conn.info.pop(_COMMITTING, None)
    conn.info.pop(_PENDING, None)
    if callbacks:
        _run(callbacks)


def _commit_failed(context) -> None:
    """`handle_error`: what waited for a COMMIT does not run when it failed (no statement
    runs between the COMMIT and the next transaction or the pool: a failure there is it)."""
    conn = context.connection
    if conn is None or conn.invalidated or conn.closed:
        return
    try:
        info = conn.info
    except NotImplementedError:
        # SQLAlchemy's first look at a new connection (the dialect's `initialize`) runs on
        # one without a pool entry, so without `info`, and nothing waits on it. Raising
        # here would hide the real error: `initialize` takes NotImplementedError for "the
        # dialect cannot tell" and goes on to a connection already closed
        return
    info.pop(_COMMITTING, None)


def _forget_pending(conn: Connection) -> None:
    # a connection invalidated in the transaction (lost) has no `info` to read: reading it
    # would raise over the real error; the pool clears what it held before reusing it
    if not conn.invalidated and not conn.closed:
        conn.info.pop(_PENDING, None)
        conn.info.pop(_COMMITTING, None)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop("sma_after_commit", [])
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop("sma_after_commit", None)
