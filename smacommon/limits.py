"""The resource limits a runbook may set for its jobs: one table for the API, the services
and the worker (which applies them: smaworker/limits.py)."""

from __future__ import annotations

from dataclasses import dataclass

# the longest timeout_seconds a runbook may set (a week); the job-duration histogram's
# buckets reach it (smacommon.metrics)
MAX_TIMEOUT_SECONDS = 7 * 86400


@dataclass(frozen=True)
class Limit:
    """One limit: its range, how a reason names it, and the worker's default for it."""

    low: int
    high: int
    label: str      # "memory limit"
    unit: str       # "MB"
    setting: str    # the worker's default when the runbook's is null


RUNBOOK_LIMITS = {
    "max_memory_mb": Limit(16, 1 << 24, "memory limit", "MB", "SMA_JOB_MEMORY_MB"),
    "max_processes": Limit(1, 1 << 22, "process limit", "processes", "SMA_JOB_MAX_PROCESSES"),
    "max_open_files": Limit(16, 1 << 20, "open-file limit", "open files",
                            "SMA_JOB_MAX_OPEN_FILES"),
    "max_cpu_seconds": Limit(1, 366 * 86400, "CPU time limit", "CPU seconds",
                             "SMA_JOB_CPU_SECONDS"),
    "max_file_mb": Limit(1, 1 << 24, "file size limit", "MB per file", "SMA_JOB_MAX_FILE_MB"),
}
