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
    S.ACTIVATING: frozenset({S.NEW, S.RESUMING}),           # a worker claims the job
    S.RUNNING: frozenset({S.ACTIVATING}),
    # a runbook that ends on its own while being suspended has finished: it completes
    S.COMPLETED: frozenset({S.RUNNING, S.SUSPENDING}),
    # failed while it ran, or before any worker took it: the reaper ends a waiting job whose
    # worker group no queue can carry (left by an older sma)
    S.FAILED: frozenset({S.NEW, S.RESUMING, S.ACTIVATING, S.RUNNING, S.SUSPENDING}),
    S.STOPPING: frozenset({S.ACTIVATING, S.RUNNING}),
    # stopped by its worker, or stopped before it ran (again)
    S.STOPPED: frozenset({S.STOPPING, S.NEW, S.SUSPENDED, S.RESUMING}),
    S.SUSPENDING: frozenset({S.RUNNING}),
    # suspended by its worker, or by the reaper after too many lost attempts
    S.SUSPENDED: frozenset({S.SUSPENDING, S.ACTIVATING, S.RUNNING}),
    # resumed by a user, by the reaper when the process running it was lost, or when a
    # worker of its group is back after its own worker shut down
    S.RESUMING: frozenset({S.SUSPENDED, S.ACTIVATING, S.RUNNING}),
}


class WaitingFor(StrEnum):
    """What a waiting job waits for, when its status_reason says it waits (jobs.waiting_for:
    the reaper and the workers decide by it, never by the reason's text)."""

    WORKER = "worker"  # New or Resuming: no worker of its group is online
    SLOT = "slot"      # New or Resuming: its runbook already runs max_concurrent_jobs jobs
    # Suspended because its worker shut down: resumes, from its last checkpoint, as soon as
    # a worker of its group is online (a job a user suspended never has it)
    RESTART = "restart"


class ReasonCode(StrEnum):
    """Why a job moved, as a code beside the status reason's text (job_status_events
    .reason_code), for whoever must tell the cases apart without reading the text."""

    WORKER_SHUTDOWN = "worker_shutdown"  # its worker shut down (suspended, then resumed)
    WORKER_LOST = "worker_lost"          # its worker was lost (resumed, or suspended)


class AttemptCause(StrEnum):
    """Why an attempt of a job started (job_attempts.cause): each run of a job is an
    attempt, numbered from 1, and each stream record carries its number."""

    FIRST = "first"                      # the job's first run
    USER = "user"                        # a user resumed it (from Suspended)
    WORKER_LOST = "worker_lost"          # the reaper resumed it: its worker was lost
    WORKER_SHUTDOWN = "worker_shutdown"  # resumed after its worker shut down


FINAL_STATUSES = frozenset({S.COMPLETED, S.FAILED, S.STOPPED})
ACTIVE_STATUSES = frozenset({S.ACTIVATING, S.RUNNING, S.STOPPING, S.SUSPENDING})
# where a job's run comes to rest: ended, or suspended until it is resumed (or stopped)
RESTING_STATUSES = FINAL_STATUSES | {S.SUSPENDED}
ALL_STATUSES = tuple(s.value for s in JobStatus)


def allowed_sources(target: JobStatus) -> frozenset[JobStatus]:
    """The statuses from which `target` may be reached."""
    return TRANSITIONS.get(target, frozenset())
