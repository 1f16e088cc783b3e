"""How long a run may take the job for its own without asking the database.

A run confirms that the job is its own when it claims it and each time it renews the lease
(every third of SMA_JOB_LEASE_SECONDS, see smaworker.supervise); the reaper takes a job over
only once its lease has run out. So for half a lease after a confirmation the run writes its
records without asking; later (its process was stopped, or the database away) its next write
confirms first, in the same transaction, and a run taken over meanwhile writes nothing more.

One gap is left: a transaction begun while the lease was fresh, whose process is then stopped
before it commits (SIGSTOP, a frozen VM). On PostgreSQL the server ends a worker's
transaction left idle for a quarter lease, so it cannot commit after a takeover and clash
with the next run's records; on SQLite it holds the only write lock, so no takeover can
happen before it commits.
"""

from __future__ import annotations

import time

from sqlalchemy import event
from sqlalchemy.pool import Pool

# After an outage, live runs renew the leases that ran out meanwhile within about a second
# of the database answering (supervise asks every second, finish tries again every second at
# most); beat's reaper judges no lease before this long has passed (smaworker.beat).
RENEW_WITHIN_SECONDS = 1.0
AFTER_OUTAGE_SECONDS = 5.0
FRESH_FRACTION = 0.5  # of the lease: trusted without asking after a confirmation
IDLE_FRACTION = 0.25  # of the lease: the longest a run's transaction may stand idle
MIN_IDLE_SECONDS = 0.5


class Lease:
    """When this run last confirmed the job as its own, on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fresh_until = 0.0
        self._on_commit: float | None = None  # a confirmation in the open transaction

    def confirmed(self, asked_at: float) -> None:
        """The database confirmed (and renewed) the lease in a statement sent after
        `asked_at` (time.monotonic()); the lease it wrote runs from no earlier than that."""
        self.fresh_until = max(self.fresh_until, asked_at + self.seconds * FRESH_FRACTION)

    def begin(self) -> None:
        """A transaction of the run begins."""
        self._on_commit = None

    def confirmed_on_commit(self, asked_at: float) -> None:
        """`confirmed`, once the open transaction commits (a rollback undoes the renewal)."""
        if self._on_commit is None:
            self._on_commit = asked_at

    def committed(self) -> None:
        """The open transaction committed."""
        if self._on_commit is not None:
            self.confirmed(self._on_commit)
            self._on_commit = None

    @property
    def fresh(self) -> bool:
        """Whether no other run can have taken the job over since the last confirmation."""
        return time.monotonic() < self.fresh_until


def idle_transaction_ms(lease_seconds: float) -> int:
    """PostgreSQL's idle_in_transaction_session_timeout for the processes that run jobs."""
    return int(1000 * max(MIN_IDLE_SECONDS, lease_seconds * IDLE_FRACTION))


_idle_ms: int | None = None


def limit_idle_transactions(lease_seconds: float) -> None:
    """Have PostgreSQL end this process's transactions that stand idle too long (see the
    module's docstring), on every connection it opens from now on."""
    global _idle_ms
    if _idle_ms is None:
        event.listen(Pool, "connect", _on_connect)
    _idle_ms = idle_transaction_ms(lease_seconds)


def _on_connect(dbapi_conn, _record) -> None:
    if _idle_ms is None or type(dbapi_conn).__module__.split(".")[0] != "psycopg":
        return
    with dbapi_conn.cursor() as cur:
        cur.execute(f"SET idle_in_transaction_session_timeout = {_idle_ms}")
    dbapi_conn.commit()
