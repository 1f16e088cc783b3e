"""A job's own environment, for a runbook with requirements: made ready (smaworker.
environments) before its process starts, the build's progress in the job's Verbose stream,
its failure the job's, never the worker's.

A build can take minutes: meanwhile the job's lease is renewed and a stop, a takeover or
the worker's shutdown ends the build as it would end the runbook (smaworker.supervise).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from smacommon.db import is_transient
from smacommon.errors import ConfigurationError
from smacommon.states import JobStatus, ReasonCode
from smacommon.streams import ERROR, VERBOSE, WARNING
from smaworker import shutdown
from smaworker.capture import StreamWriter
from smaworker.envbuild import BuildError
from smaworker.environments import Environment, current_environments
from smaworker.finish import finish
from smaworker.jobmodules import module_index_url
from smaworker.lease import RENEW_WITHIN_SECONDS

if TYPE_CHECKING:
    from smaworker.runner import JobRunner

log = logging.getLogger(__name__)


class _JobEnded(Exception):
    """The job was stopped, taken over or suspended while its environment was made."""

    def __init__(self, status: JobStatus | None, reason: str,
                 code: ReasonCode | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.code = status, reason, code


class _KeepAlive:
    """Called about once a second during a build or a wait: writes the records due, renews
    the lease every third of it, and ends the build when the job must end."""

    def __init__(self, runner: JobRunner, writer: StreamWriter) -> None:
        self.runner = runner
        self.writer = writer
        self.every = runner.settings.job_lease_seconds / 3
        self.next_lease = time.monotonic() + self.every
        self.next_check = time.monotonic() + RENEW_WITHIN_SECONDS

    def __call__(self) -> None:
        self.writer.flush_if_due()
        now = time.monotonic()
        if now < self.next_check:  # called for every line a build writes: ask once a second
            return
        self.next_check = now + RENEW_WITHIN_SECONDS
        renew = now >= self.next_lease
        try:
            status = self.runner.check_status(renew)
        except Exception as exc:  # the database is away: build on, renew when it is back
            if not is_transient(exc):
                raise
            return
        if renew:
            self.next_lease = now + self.every
        if status is None:
            raise _JobEnded(None, "The job was taken over after its lease expired while its "
                                  "environment was built; this run ended.")
        if status == JobStatus.STOPPING.value:
            raise _JobEnded(JobStatus.STOPPED, "Stopped on request.")
        at = shutdown.deadline()
        if at is not None and now >= at:
            group = self.runner.settings.worker_group
            raise _JobEnded(JobStatus.SUSPENDED,
                            f"Suspended: the worker {self.runner.worker_name} shut down while "
                            f"the job's environment was built; it resumes as soon as a worker "
                            f"of group {group!r} is online.", ReasonCode.WORKER_SHUTDOWN)


def prepare(runner: JobRunner, writer: StreamWriter) -> Environment | None:
    """The job's environment, its lock held until the job ends; None when the job ended
    instead (its build failed, or it was stopped meanwhile), its status recorded."""
    try:
        environments = current_environments(runner.settings, runner.sandbox)
        # sma's index of uploaded modules, with the job's token: a runbook may pin one
        uploaded = [module_index_url(runner.settings, runner.token)] if runner.token else []
        return environments.ensure(runner.job.requirements,
                                   on_progress=lambda text: writer.add(VERBOSE, text),
                                   keep_alive=_KeepAlive(runner, writer),
                                   private_indexes=uploaded)
    except (BuildError, ConfigurationError) as exc:
        reason = str(exc)
        log.warning("job %s: %s", runner.job_id, reason.splitlines()[0])
        writer.add(ERROR, reason)
        finish(runner, writer, JobStatus.FAILED, exit_code=None, reason=reason,
               exception=reason)
    except _JobEnded as ended:
        if ended.status is None:
            log.warning("job %s: %s", runner.job_id, ended.reason)
            writer.drop()
            return None
        writer.add(WARNING, ended.reason)
        finish(runner, writer, ended.status, exit_code=None, reason=ended.reason,
               code=ended.code)
    return None
