"""Runs one job: claim it, start its process, capture what it writes, record how it ended.

This module holds the run's state and takes the job through its steps, each in a module
of its own: smaworker.claim (the job row: claim, concurrency slot, lease), smaworker.launch
(what the runbook runs with: its script, checkpoint, environment and process),
smaworker.supervise (the loop over the running process), smaworker.finish (the final
status).

Liveness is per job: while the runbook runs, this process renews the job's lease and
checks its status about once a second, so a stop or suspend asked through the API ends the
process group within seconds, and a job taken over by another worker (the reaper found its
lease expired) is ended here instead of running twice.

A database that cannot be reached for a while (a restart, a failover) does not end a job:
the runbook runs on, its records and its last checkpoint wait in memory and are written
when the database answers again, and the final status is retried for SMA_DB_RETRY_SECONDS.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from smacommon.db import get_engine, is_transient, utcnow
from smacommon.models import Job
from smacommon.services.jobs import transition
from smacommon.services.tokens import hash_token, new_job_secret
from smacommon.settings import Settings
from smacommon.states import ACTIVE_STATUSES, JobStatus
from smacommon.streams import DEBUG, ERROR, PROGRESS, VERBOSE
from smaworker import warm
from smaworker.capture import StreamWriter
from smaworker.checkpoints import Checkpoint, Checkpointing, SealedCheckpoint
from smaworker.claim import (
    ClaimedJob,
    ClaimedRunbook,
    ClaimedVersion,
    check_status,
    claim_job,
    end_previous_run,
    still_ours,
)
from smaworker.engines import get_engine as get_runbook_engine
from smaworker.environments import Environment
from smaworker.finish import finish, finish_run
from smaworker.jobenv import prepare as prepare_environment
from smaworker.jobkeys import JobKeys, JobKeysUnavailable
from smaworker.jobmodules import prepare as prepare_modules
from smaworker.launch import content_to_run, job_env, start_process, write_workdir
from smaworker.lease import Lease
from smaworker.resources import JobResources
from smaworker.sandbox import current_sandbox
from smaworker.supervise import Supervisor

log = logging.getLogger(__name__)

_jobs = Job.__table__
_ACTIVE = frozenset(s.value for s in ACTIVE_STATUSES)


class JobRunner(Checkpointing):
    """Everything the worker does for one `sma.run_job` message."""

    def __init__(self, job_id: str, settings: Settings, worker_name: str, publish=None,
                 enqueue=None, metrics=None) -> None:
        self.job_id = uuid.UUID(job_id)
        self.settings = settings
        self.worker_name = worker_name
        self.actor = f"worker:{worker_name}"
        self.publish = publish
        self.enqueue = enqueue
        self.metrics = metrics  # smacommon.metrics.RedisMetrics, or None
        self.run_started: Any = None  # when this attempt's process started
        self.first_seq: int | None = None  # the last seq before this attempt's records
        self.final_status: JobStatus | None = None  # where this run moved the job at its end
        self.engine = get_engine(settings.effective_database_url)
        self.attempt = 1
        self.lease = Lease(settings.job_lease_seconds)  # when the job was last ours for sure
        self.after_seq = 0
        self.job: ClaimedJob | None = None  # what the claim read of the job
        self.runbook: ClaimedRunbook | None = None  # ... of its runbook
        self.version: ClaimedVersion | None = None  # ... and of the version it runs
        self.unsealed_checkpoint: Checkpoint | None = None  # until the keys are had
        self.pending_checkpoint: SealedCheckpoint | None = None  # until it is written
        self._checkpoint_sent: SealedCheckpoint | None = None
        self.started: tuple[int, Any] | None = None  # (pid, time) until Running is written
        self.running_refused = False
        self.token = new_job_secret()  # the job's own API token, for assets and child jobs
        self.keys = JobKeys(settings, self.token)  # its own encryption keys, when needed
        self.sandbox = current_sandbox(settings)
        self.environment: Environment | None = None  # its own, for a runbook with requirements
        self.engine_path = "cold"  # "warm": a pre-started host ran it (smaworker/warm.py)

    def run(self) -> str:
        """Claim and run the job; its status when this run ended it, else why not (the
        task's result, which Flower shows)."""
        try:
            if not self._claim():
                return "not claimed"
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("job %s: not claimed, the database is unreachable (%s); the reaper "
                        "sends it again", self.job_id, str(exc).splitlines()[0])
            return "not claimed: the database is unreachable"
        workdir = resources = host = None
        try:
            host = warm.take(self.settings, self.job, self.runbook)  # None: it runs cold
            if host is not None:  # its folder, uid and limits are the job's
                resources, workdir = host.resources, host.workdir
            else:
                resources = JobResources(self.sandbox, self.settings, self.runbook,
                                         self.job_id.hex)
                workdir = self.sandbox.make_workdir(self.job_id.hex, uid=resources.uid)
            self._run_claimed(workdir, resources, host)
        except Exception as exc:
            if is_transient(exc):
                log.error("job %s: the database stayed unreachable; the job is left to the "
                          "reaper, which resumes it once its lease expires", self.job_id,
                          exc_info=True)
                return "left to the reaper: the database is unreachable"
            log.exception("job %s: worker error", self.job_id)
            with self.engine.begin() as conn:
                if transition(conn, self.job_id, JobStatus.FAILED, actor=self.actor,
                              expect={"attempt": self.attempt}, exception=f"{exc}",
                              status_reason=f"The worker failed to run the job: {exc}"):
                    self.final_status = JobStatus.FAILED
        finally:
            if host is not None:  # ended, if the job did not take it; its folder (the
                warm.after_job(host)  # job's) goes; its init may take the next host
            elif workdir is not None:
                self.sandbox.remove_workdir(workdir)
            if host is None and resources is not None:  # (a host's go with it, or on)
                resources.release()
            if self.environment is not None:
                self.environment.release()
            warm.prepare(self.settings, self.sandbox)  # the next job's, while this waits
        return self.final_status.value if self.final_status else "not ended by this run"

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction of this run. When it does not commit, what it would have recorded
        (Running, a checkpoint) is still due and goes with the next one."""
        started, refused = self.started, self.running_refused
        self.lease.begin()
        try:
            with self.engine.begin() as conn:
                yield conn
        except BaseException:
            self.started, self.running_refused = started, refused
            raise
        finally:
            sent, self._checkpoint_sent = self._checkpoint_sent, None
        if sent is not None and sent is self.pending_checkpoint:
            self.pending_checkpoint = None
        self.lease.committed()

    # --- claim -------------------------------------------------------------------------

    def _claim(self) -> bool:
        """Take the job (see `claim_job`); keep what the claim read to run it."""
        asked = time.monotonic()
        claim = claim_job(self.engine, self.job_id, worker=self.worker_name, actor=self.actor,
                          lease_seconds=self.settings.job_lease_seconds,
                          token_hash=hash_token(self.token))
        if claim is None:
            return False
        self.lease.confirmed(asked)
        self.job, self.runbook, self.version = claim.job, claim.runbook, claim.version
        self.attempt = claim.job.attempt
        self.after_seq = claim.after_seq  # it ran before: number after its records
        return True

    # --- run ---------------------------------------------------------------------------

    def _run_claimed(self, workdir: Path, resources: JobResources,
                     host: warm.WarmHost | None) -> None:
        job, runbook = self.job, self.runbook
        content, declared = content_to_run(job, runbook, self.version)
        if job.pid:
            end_previous_run(job.pid, self.job_id)
        engine = get_runbook_engine(runbook.runbook_type)
        writer = StreamWriter(
            self.engine, self.job_id, next_seq=self.after_seq + 1, attempt=self.attempt,
            batch_lines=self.settings.stream_batch_lines,
            batch_ms=self.settings.stream_batch_ms, publish=self.publish,
            keep={VERBOSE: runbook.log_verbose, PROGRESS: runbook.log_progress,
                  DEBUG: runbook.log_debug}, transaction=self.transaction,
            before_write=self.in_batch, still_ours=self.still_ours)
        if not engine.available():
            reason = (f"Worker {self.worker_name} cannot run {runbook.runbook_type} runbooks: "
                      f"{engine.executable or runbook.runbook_type} is not installed there.")
            writer.add(ERROR, reason)
            finish(self, writer, JobStatus.FAILED, exit_code=None, reason=reason, exception=reason)
            return
        try:
            parameters, checkpoint = self.keys.open(job, writer.masker)
        except JobKeysUnavailable as exc:
            reason = (f"The worker could not get the job's keys to open its secret parameters "
                      f"and checkpoint: {exc}. Resume the job once the web service answers.")
            writer.add("Warning", reason)
            finish(self, writer, JobStatus.SUSPENDED, exit_code=None, reason=reason)
            return
        if job.requirements:
            self.environment = prepare_environment(self, writer)
            if self.environment is None:
                return  # ended instead: its build failed, or it was stopped meanwhile
        modules, trouble = prepare_modules(self.settings, self.sandbox, self.token,
                                           runbook.runbook_type)
        if trouble:
            writer.add("Warning", trouble)
        env = job_env(self.sandbox, self.settings, workdir, str(self.job_id), runbook,
                      self.token)
        script = write_workdir(workdir, engine, content, checkpoint, env)
        if not self.lease.fresh and self.check_status(renew=True) is None:
            # its start took longer than the lease (its keys slow to come): taken over?
            log.warning("job %s: taken over by a later run before this one started", self.job_id)
            return
        handed = host and host.hand_off(script, parameters, list(declared or []),
                                        list(job.arguments or []), env)
        self.engine_path = "warm" if handed else "cold"
        proc, stdout_r, tag = handed or start_process(
            engine, runbook, job_id=str(self.job_id), workdir=workdir, script=script,
            parameters=parameters, declared=list(declared or []), env=env,
            arguments=list(job.arguments or []), sandbox=self.sandbox, resources=resources,
            environment=self.environment and self.environment.path, modules=modules)
        # Running is written with the first records, or the final status of a job that ends
        # at once, or after a batch interval at the latest: one commit less for short jobs
        self.started = (proc.pid, utcnow())
        self.run_started = self.started[1]
        self.first_seq = writer.seq
        try:
            supervisor = Supervisor(self, proc, stdout_r, tag, writer, runbook.timeout_seconds)
            outcome, ending = supervisor.run()
        finally:
            os.close(stdout_r)
            self.sandbox.signal(proc, signal.SIGKILL)
            # an init that reported its host's end is reaped with the host (host.discard)
            if proc.poll() is None and getattr(proc, "reported", None) is None:
                proc.wait(timeout=10)
        finish_run(self, writer, outcome, ending, resources, supervisor.rusage)

    def in_batch(self, conn: Connection) -> None:
        """What goes in the transaction of every batch of records: Running, once, and the
        runbook's checkpoint when one is waiting."""
        self.record_running(conn)
        self.write_checkpoint(conn)

    def record_running(self, conn: Connection) -> None:
        """Write Running (with the time the process started) in `conn`'s transaction, once."""
        if self.started is None:
            return
        pid, at = self.started
        self.started = None
        if not transition(conn, self.job_id, JobStatus.RUNNING, actor=self.actor,
                          expect={"attempt": self.attempt}, pid=pid, start_time=at,
                          engine_path=self.engine_path):
            self.running_refused = True  # stopped or taken over while activating
        elif self.metrics is not None and self.attempt == 1 and self.job.created_at:
            self.metrics.job_started(self.runbook.name,
                                     (at - self.job.created_at).total_seconds())

    # --- while it runs -----------------------------------------------------------------

    def check_status(self, renew: bool) -> str | None:
        """The job's status as seen by this attempt (None: it is no longer ours); renews
        the lease when asked."""
        asked = time.monotonic()
        status = check_status(self.engine, self.job_id, self.attempt, self.worker_name,
                              self.settings.job_lease_seconds, renew)
        if renew and status in _ACTIVE:
            self.lease.confirmed(asked)
        return status

    def still_ours(self, conn: Connection, recheck: bool = False) -> bool:
        """Whether this run still has the job: without asking while the lease is fresh
        (see smaworker.lease), else renewing it in `conn`'s transaction with the row locked
        (see `claim.still_ours`); `recheck` asks in any case."""
        if not recheck and self.lease.fresh:
            return True
        asked = time.monotonic()
        ours = still_ours(conn, self.job_id, self.attempt, self.worker_name,
                          self.settings.job_lease_seconds)
        if ours:
            self.lease.confirmed_on_commit(asked)
        return ours
