"""The job output streams (SMA's Output, Error, Warning, Verbose, Progress, Debug)."""

from __future__ import annotations

OUTPUT = "Output"
ERROR = "Error"
WARNING = "Warning"
VERBOSE = "Verbose"
PROGRESS = "Progress"
DEBUG = "Debug"

STREAMS = (OUTPUT, ERROR, WARNING, VERBOSE, PROGRESS, DEBUG)
# streams kept only when the runbook's matching log setting is on
OPTIONAL_STREAMS = {VERBOSE: "log_verbose", PROGRESS: "log_progress", DEBUG: "log_debug"}


def stream_channel(job_id: str) -> str:
    """The Redis channel on which a job's new records (and its end) are announced."""
    return f"sma:job:{job_id}:streams"
