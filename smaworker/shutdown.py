"""A worker's graceful shutdown, as its pool processes see it.

SIGTERM or SIGINT reaches the worker's main process only (Celery's pool processes ignore
SIGINT and are never signalled by `sma up` or Docker). Celery then stops taking jobs and
waits for the running ones (its warm shutdown); the main process writes a deadline,
SMA_SHUTDOWN_GRACE_SECONDS away, into a page of memory it shares with its pool processes
since they were forked. Each pool process's supervisor loop reads it: a job still running
at the deadline is suspended (its process group ended, its checkpoint kept) and resumes
when a worker of its group is back. A second SIGTERM moves the deadline to now (a second
SIGINT is Celery's cold shutdown, which ends the pool processes and their jobs at once).

The page is read and written without locks: the main process writes it in a signal
handler, where no lock may be taken.
"""

from __future__ import annotations

import mmap
import struct
import time

# MAP_SHARED | MAP_ANONYMOUS, made at import, in the main process, before the pool forks.
# It holds the deadline in CLOCK_MONOTONIC seconds (the same clock in every process of the
# host); 0.0: no shutdown asked.
_page = mmap.mmap(-1, mmap.PAGESIZE)
_DEADLINE = struct.Struct("d")


def begin(grace: float) -> None:
    """The worker was asked to stop: running jobs have `grace` seconds (the first call
    counts; safe in a signal handler)."""
    if deadline() is None:
        _DEADLINE.pack_into(_page, 0, time.monotonic() + max(grace, 0.0))


def hurry() -> None:
    """Asked again: suspend the running jobs now (safe in a signal handler)."""
    _DEADLINE.pack_into(_page, 0, time.monotonic())


def deadline() -> float | None:
    """When running jobs are suspended (time.monotonic()); None while no shutdown is asked."""
    value = _DEADLINE.unpack_from(_page, 0)[0]
    return value or None


def shutting_down() -> bool:
    """Whether this worker was asked to stop."""
    return deadline() is not None
