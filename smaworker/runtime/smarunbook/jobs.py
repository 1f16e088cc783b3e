"""Child runbooks: start a published runbook from inside a job, with the job's own token.

    job_id = start_runbook("Deploy", {"env": "prod"})             # and go on
    outputs = start_runbook("Deploy", {"env": "prod"}, wait=True)  # its output objects
    start_runbook("Cleanup", arguments=["-s", "web01", "/tmp"])    # a script's sys.argv[1:]

A waited-on child stops when its parent is stopped. A child that ends other than
Completed raises ChildJobFailed with its status and reason.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from smarunbook.assets import AutomationAssetError, _call

FINAL = ("Completed", "Failed", "Stopped")


class ChildJobFailed(Exception):
    """A child job waited on ended Failed, Stopped or Suspended."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        reason = job.get("exception") or job.get("status_reason") or ""
        super().__init__(f"Child job {job['id']} ({job.get('runbook_name')}) ended "
                         f"{job['status']}: {reason}".rstrip(": "))


def start_runbook(name: str, parameters: dict[str, Any] | None = None, wait: bool = False,
                  timeout: float | None = None, worker_group: str | None = None,
                  arguments: list[str] | None = None) -> Any:
    """Start runbook `name` with named `parameters` and/or positional `arguments`; its job id,
    or with wait=True the list of its output objects."""
    body: dict[str, Any] = {"runbook": name, "parameters": parameters or {}, "wait": wait}
    if arguments is not None:
        # anything else goes as it is, for the service to say what it takes
        body["arguments"] = list(arguments) if isinstance(arguments, list | tuple) \
            else arguments
    if worker_group:
        body["worker_group"] = worker_group
    try:
        job = _call("POST", "jobs", body)
    except AutomationAssetError as exc:
        raise RuntimeError(f"Could not start runbook {name!r}: {exc}") from None
    if not wait:
        return job["id"]
    return wait_for_job(job["id"], timeout)


def wait_for_job(job_id: str, timeout: float | None = None) -> list[Any]:
    """Wait for a child job to end; its output objects (typed values, else text lines)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = 0.05
    while True:
        job = _call("GET", f"jobs/{urllib.parse.quote(job_id)}")
        if job["status"] in FINAL or job["status"] == "Suspended":
            break
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"Child job {job_id} still {job['status']} after {timeout} s.")
        time.sleep(pause)
        pause = min(pause * 1.5, 1.0)
    if job["status"] != "Completed":
        raise ChildJobFailed(job)
    items = _call("GET", f"jobs/{urllib.parse.quote(job_id)}/output")["items"]
    return [item["value"] if item.get("value") is not None else item["text"]
            for item in items]
