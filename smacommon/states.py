"""Job statuses and the table of legal transitions (SMA's job state machine)."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    NEW = "New"
    ACTIVATING = "Activating"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    SUSPENDING = "Suspending"
    SUSPENDED = "Suspended"
    RESUMING = "Resuming"


S = JobStatus

# target status -> the statuses it may be reached from
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.ACTIVATING: frozenset({S.NEW, S.RESUMING}),
    S.RUNNING: frozenset({S.ACTIVATING}),
    S.COMPLETED: frozenset({S.RUNNING, S.STOPPING, S.SUSPENDING}),
    S.FAILED: frozenset({S.ACTIVATING, S.RUNNING, S.STOPPING, S.SUSPENDING}),
    S.STOPPING: frozenset({S.RUNNING, S.ACTIVATING}),
    S.STOPPED: frozenset({S.STOPPING, S.NEW, S.SUSPENDED, S.RUNNING, S.ACTIVATING}),
    S.SUSPENDING: frozenset({S.RUNNING}),
    S.SUSPENDED: frozenset({S.SUSPENDING, S.RUNNING}),
    S.RESUMING: frozenset({S.SUSPENDED}),
}

FINAL_STATUSES = frozenset({S.COMPLETED, S.FAILED, S.STOPPED})
ACTIVE_STATUSES = frozenset({S.ACTIVATING, S.RUNNING, S.STOPPING, S.SUSPENDING})
ALL_STATUSES = tuple(s.value for s in JobStatus)


def allowed_sources(target: JobStatus) -> frozenset[JobStatus]:
    """The statuses from which `target` may be reached."""
    return TRANSITIONS.get(target, frozenset())
