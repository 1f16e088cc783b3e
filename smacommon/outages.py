"""What counts as the database being away (an outage) rather than a fault of our own, and
making SQLAlchemy replace a connection the server dropped.

A connection cut while the server stays up (`pg_terminate_backend`, a proxy or firewall
dropping it, a failover) surfaces in many shapes: psycopg's OperationalError or one with a
08/57P SQLSTATE, "the connection is lost", InterfaceError "the connection is closed",
ProgrammingError "can't change 'autocommit' now" (raised over the real error by the pool's
ping), and SQLAlchemy's PendingRollbackError "Can't reconnect until invalid transaction is
rolled back", each maybe chained over the one before. `is_transient` reads the whole chain
of database exceptions; `on_engine_error` (a `handle_error` listener) marks the lost
connection as a disconnect, so SQLAlchemy invalidates it and the next transaction gets a
fresh one.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, PendingRollbackError, SQLAlchemyError

T = TypeVar("T")

_SQLITE_TRANSIENT = ("locked", "busy", "disk i/o error", "unable to open database file")

# PostgreSQL: a lost connection (08), shutting down or starting (57P01-03)
_LOST_STATES = ("57P01", "57P02", "57P03")
# ... and states where the same transaction may succeed when tried again on the same
# connection: a deadlock or serialization failure (40), out of resources (53), a system
# error (58), a lock not granted in time (55P03)
_RETRY_CLASSES = ("40", "53", "58")

# SQLAlchemy's code for "Can't reconnect until invalid transaction is rolled back": the
# connection was invalidated (as a disconnect) in the middle of a transaction
_INVALIDATED_IN_TRANSACTION = "8s2b"


def _psycopg():
    """psycopg, if it is loaded: a psycopg exception exists only then, and a process on
    SQLite is spared loading it (and libpq: some megabytes in every worker process)."""
    return sys.modules.get("psycopg")


def _database_errors() -> tuple[type[BaseException], ...]:
    driver = _psycopg()
    return (SQLAlchemyError, sqlite3.Error) + ((driver.Error,) if driver else ())


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the database exceptions it was raised over (its cause and context), so an
    outage hidden under an error raised while cleaning up after it is still seen. Only the
    database's exceptions are walked: a bug raised while handling an outage stays a bug."""
    database = _database_errors()
    seen: set[int] = set()
    todo = [exc] if isinstance(exc, database) else []
    while todo and len(seen) < 16:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [link for link in (current.__cause__, current.__context__)
                 if isinstance(link, database)]


def _driver_lost(err: BaseException) -> bool:
    """Whether a DBAPI exception says the connection itself is gone."""
    psycopg = _psycopg()
    if psycopg is None or not isinstance(err, psycopg.Error):
        return False
    state = err.sqlstate
    if state is not None:
        return state[:2] == "08" or state in _LOST_STATES
    if isinstance(err, psycopg.OperationalError):  # no answer at all: lost, closed, refused
        return True
    message = str(err)
    if isinstance(err, psycopg.InterfaceError):
        return "connection is" in message  # "the connection is closed", "... in status"
    # set on a connection whose server went away (SQLAlchemy's ping does it after its query)
    return isinstance(err, psycopg.ProgrammingError) and message.startswith("can't change") \
        and message.endswith("transaction status UNKNOWN")


def _driver_retry(err: BaseException) -> bool:
    """Whether a DBAPI exception asks to try the transaction again (not a lost connection)."""
    if isinstance(err, sqlite3.OperationalError):
        return any(word in str(err).lower() for word in _SQLITE_TRANSIENT)
    psycopg = _psycopg()
    if psycopg is not None and isinstance(err, psycopg.Error):
        state = err.sqlstate
        return state is not None and (state[:2] in _RETRY_CLASSES or state == "55P03")
    return False


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` (or a database exception under it) says the connection is gone."""
    for err in _chain(exc):
        if isinstance(err, DBAPIError):
            if err.connection_invalidated:
                return True
            err = err.orig
        elif isinstance(err, PendingRollbackError):
            if err.code == _INVALIDATED_IN_TRANSACTION:
                return True
            continue
        if err is not None and _driver_lost(err):
            return True
    return False


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached or asked us to try again (a
    lost connection, a server restarting, a failover, a deadlock victim, a busy SQLite
    file), so the same transaction may succeed later; not a bad statement or bad data.
    SQLAlchemy's and the driver's own exceptions count, whatever wraps them."""
    if connection_lost(exc):
        return True
    for err in _chain(exc):
        if isinstance(err, DBAPIError):
            err = err.orig
        if err is not None and _driver_retry(err):
            return True
    return False


def on_engine_error(context: ExceptionContext) -> None:
    """`handle_error` listener: a connection the server dropped is a disconnect, whatever
    the driver's words, so SQLAlchemy invalidates it and the next use gets a new one. A
    pooled connection that fails the pool's ping in any way is replaced too (a reconnect
    that fails then says what is wrong)."""
    if context.is_disconnect:
        return
    if context.is_pre_ping or connection_lost(context.original_exception):
        context.is_disconnect = True


def once_more_if_cut(work: Callable[[], T]) -> T:
    """Run `work` (one whole transaction); when its connection was cut, run it once more
    on a new one: a cut connection is usually one connection lost (an administrator, a
    proxy, a failover already over), not an outage. Only for work that is safe to run
    twice (what it changes, it checks first)."""
    try:
        return work()
    except Exception as exc:
        if not connection_lost(exc):
            raise
    return work()
