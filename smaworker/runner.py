"""Runs one job: claim it, start its process, capture what it writes, record how it ended.

Liveness is per job: while the runbook runs, this process renews the job's lease and
checks its status about once a second, so a stop or suspend asked through the API ends the
process group within seconds, and a job taken over by another worker (the reaper found its
lease expired) is ended here instead of running twice.

A database that cannot be reached for a while (a restart, a failover) does not end a job:
the runbook runs on, its records and its last checkpoint wait in memory and are written
when the database answers again, and the final status is retried for SMA_DB_RETRY_SECONDS.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select, update

from smacommon.db import get_engine, is_transient, read_connection, utcnow
from smacommon.models import Job, JobStream
from smacommon.sealing import seal
from smacommon.services import configuration
from smacommon.services.jobs import current_status, transition
from smacommon.services.tokens import hash_token, new_job_secret
from smacommon.settings import Settings
from smacommon.states import JobStatus
from smacommon.streams import DEBUG, ERROR, OUTPUT, PROGRESS, VERBOSE
from smaworker.capture import LineSplitter, StreamWriter, parse_record
from smaworker.claim import (
    ClaimedJob,
    ClaimedRunbook,
    ClaimedVersion,
    check_status,
    claim_job,
    end_previous_run,
    still_ours,
)
from smaworker.engines import JobContext
from smaworker.engines import get_engine as get_runbook_engine
from smaworker.jobkeys import JobKeys, JobKeysUnavailable
from smaworker.limits import limit_reason
from smaworker.resources import JobResources, JobUsage, reap
from smaworker.sandbox import CLEAN_PATH, current_sandbox

log = logging.getLogger(__name__)

S = JobStatus
_READ = 65536
_EXIT_DRAIN_SECONDS = 0.5
_CONTROL_SECONDS = 1.0
_jobs = Job.__table__
_DELIVERY_ORDER = {OUTPUT: 0, ERROR: 1, "record": 2}


@dataclass
class Ending:
    """Why the worker is ending the runbook's process group, and the status that follows."""

    status: JobStatus | None       # None: the job is no longer ours; record nothing
    reason: str
    kill_at: float                 # SIGKILL follows SIGTERM at this time


class JobRunner:
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
        self.engine = get_engine(settings.effective_database_url)
        self.attempt = 1
        self.job: ClaimedJob | None = None  # what the claim read of the job
        self.runbook: ClaimedRunbook | None = None  # ... of its runbook
        self.version: ClaimedVersion | None = None  # ... and of the version it runs
        self.pending_checkpoint: tuple[str] | None = None  # (sealed,) until it is written
        self.unsealed_checkpoint: tuple[Any] | None = None  # (data,) until the keys are had
        self._checkpoint_sent: tuple[Any] | None = None
        self.started: tuple[int, Any] | None = None  # (pid, time) until Running is written
        self.running_refused = False
        self.token = new_job_secret()  # the job's own API token, for assets and child jobs
        self.keys = JobKeys(settings, self.token)  # its own encryption keys, when needed
        self.sandbox = current_sandbox(settings)

    def run(self) -> None:
        try:
            if not self._claim():
                return
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("job %s: not claimed, the database is unreachable (%s); the reaper "
                        "sends it again", self.job_id, str(exc).splitlines()[0])
            return
        workdir = resources = None
        try:
            resources = JobResources(self.sandbox, self.settings, self.runbook, self.job_id.hex)
            workdir = self.sandbox.make_workdir(self.job_id.hex, uid=resources.uid)
            self._run_claimed(workdir, resources)
        except Exception as exc:
            if is_transient(exc):
                log.error("job %s: the database stayed unreachable; the job is left to the "
                          "reaper, which resumes it once its lease expires", self.job_id,
                          exc_info=True)
                return
            log.exception("job %s: worker error", self.job_id)
            with self.engine.begin() as conn:
                transition(conn, self.job_id, S.FAILED, actor=self.actor,
                           expect={"attempt": self.attempt}, exception=f"{exc}",
                           status_reason=f"The worker failed to run the job: {exc}")
        finally:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            if resources is not None:
                resources.release()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction of this run. When it does not commit, what it would have recorded
        (Running, a checkpoint) is still due and goes with the next one."""
        started, refused = self.started, self.running_refused
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

    # --- claim -------------------------------------------------------------------------

    def _claim(self) -> bool:
        """Take the job (see `claim_job`); keep what the claim read to run it."""
        claim = claim_job(self.engine, self.job_id, worker=self.worker_name, actor=self.actor,
                          lease_seconds=self.settings.job_lease_seconds,
                          token_hash=hash_token(self.token))
        if claim is None:
            return False
        self.job, self.runbook, self.version = claim.job, claim.runbook, claim.version
        self.attempt = claim.job.attempt
        return True

    # --- run ---------------------------------------------------------------------------

    def _prepare(self) -> tuple[str, list[dict[str, Any]], int]:
        """The content to run, its declared parameters, and the last record number so far."""
        job, runbook = self.job, self.runbook
        if job.is_test:
            from smacommon.services.runbooks import draft_parameters

            content = job.test_content or ""
            try:
                declared = draft_parameters(runbook, content)
            except Exception:  # a broken draft: let the interpreter say what is wrong
                declared = []
        else:
            content, declared = self.version.content, self.version.parameters
        last_seq = 0
        if job.start_time is not None:  # it ran before: go on numbering after its records
            with read_connection(self.engine) as conn:
                last_seq = conn.execute(select(func.max(JobStream.seq))
                                        .where(JobStream.job_id == self.job_id)).scalar() or 0
        return content, declared, last_seq

    def _run_claimed(self, workdir: Path, resources: JobResources) -> None:
        job, runbook = self.job, self.runbook
        content, declared, last_seq = self._prepare()
        if job.pid:
            end_previous_run(job.pid, self.job_id)
        engine = get_runbook_engine(runbook.runbook_type)
        writer = StreamWriter(
            self.engine, self.job_id, next_seq=last_seq + 1,
            batch_lines=self.settings.stream_batch_lines,
            batch_ms=self.settings.stream_batch_ms, publish=self.publish,
            keep={VERBOSE: runbook.log_verbose, PROGRESS: runbook.log_progress,
                  DEBUG: runbook.log_debug}, transaction=self.transaction)
        if not engine.available():
            reason = (f"Worker {self.worker_name} cannot run {runbook.runbook_type} runbooks: "
                      f"{engine.executable or runbook.runbook_type} is not installed there.")
            writer.add(ERROR, reason)
            self._finish(writer, S.FAILED, exit_code=None, reason=reason, exception=reason)
            return
        try:
            parameters, checkpoint = self.keys.open(job, writer.masker)
        except JobKeysUnavailable as exc:
            reason = (f"The worker could not get the job's keys to open its secret parameters "
                      f"and checkpoint: {exc}. Resume the job once the web service answers.")
            writer.add("Warning", reason)
            self._finish(writer, S.SUSPENDED, exit_code=None, reason=reason)
            return
        script = workdir / f"runbook{engine.suffix}"
        script.write_text(content, encoding="utf-8")
        env = self._base_env(workdir, runbook)
        if checkpoint is not None:
            restored = workdir / "checkpoint.json"
            restored.write_text(json.dumps(checkpoint), encoding="utf-8")
            env["SMA_CHECKPOINT_FILE"] = str(restored)
        record_r, record_w = os.pipe()
        env["SMA_RECORD_FD"] = str(record_w)
        try:
            ctx = JobContext(
                job_id=str(self.job_id), workdir=workdir, script_path=script,
                parameters=parameters, declared=list(declared or []),
                log_verbose=runbook.log_verbose, log_progress=runbook.log_progress,
                log_debug=runbook.log_debug, env=env, runtime_dir=self.sandbox.runtime_dir,
                python=self.sandbox.python)
            argv, extra = engine.command(ctx)
            env = {**ctx.env, **extra}
            argv = resources.apply(engine, argv, env)
            passwd_fd = resources.passwd_fd(workdir)
            argv, options, env = self.sandbox.command(
                argv, workdir, env, drops_itself=engine.drops_privileges, uid=resources.uid,
                passwd_fd=passwd_fd)
            options.update(resources.popen_options(options.get("preexec_fn")))
            proc = subprocess.Popen(
                argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(record_w,) if passwd_fd is None else (record_w, passwd_fd),
                start_new_session=True, close_fds=True, **options)
        finally:
            os.close(record_w)
            resources.started()
        # Running is written with the first records, or the final status of a job that ends
        # at once, or after a batch interval at the latest: one commit less for short jobs
        self.started = (proc.pid, utcnow())
        self.run_started = self.started[1]
        self.first_seq = writer.seq
        writer.before_write = self.in_batch
        writer.still_ours = self.still_ours
        try:
            capture = _Capture(self, proc, record_r, writer, runbook.timeout_seconds)
            outcome, ending = capture.run()
        finally:
            os.close(record_r)
            self.sandbox.signal(proc, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=10)
        if ending is not None and ending.status is None:
            log.warning("job %s: %s", self.job_id, ending.reason)
            return
        usage = resources.usage(capture.rusage)
        if ending is not None:
            self._finish(writer, ending.status, exit_code=outcome, reason=ending.reason,
                         exception=ending.reason if ending.status == S.FAILED else None,
                         usage=usage)
        elif outcome == 0:
            self._finish(writer, S.COMPLETED, exit_code=0, usage=usage)
        else:
            tail = "\n".join(writer.error_tail)[-4000:]
            reason = _exit_reason(outcome)
            limit = resources.limit_hit(outcome, list(writer.error_tail), usage)
            if limit is not None:
                reason = limit_reason(resources.limits, limit, reason)
                writer.add(ERROR, reason)
            self._finish(writer, S.FAILED, exit_code=outcome, reason=reason,
                         exception=tail or reason, usage=usage)

    def in_batch(self, conn: Connection) -> None:
        """What goes in the transaction of every batch of records: Running, once, and the
        runbook's checkpoint when one is waiting."""
        self.record_running(conn)
        if self.pending_checkpoint is not None:
            conn.execute(update(_jobs).where(
                _jobs.c.id == self.job_id, _jobs.c.attempt == self.attempt)
                .values(checkpoint=None, sealed_checkpoint=self.pending_checkpoint[0]))
            self._checkpoint_sent = self.pending_checkpoint

    def record_running(self, conn: Connection) -> None:
        """Write Running (with the time the process started) in `conn`'s transaction, once."""
        if self.started is None:
            return
        pid, at = self.started
        self.started = None
        if not transition(conn, self.job_id, S.RUNNING, actor=self.actor,
                          expect={"attempt": self.attempt}, pid=pid, start_time=at):
            self.running_refused = True  # stopped or taken over while activating
        elif self.metrics is not None and self.attempt == 1 and self.job.created_at:
            self.metrics.job_started(self.runbook.name,
                                     (at - self.job.created_at).total_seconds())

    def _base_env(self, workdir: Path, runbook: ClaimedRunbook) -> dict[str, str]:
        return self.sandbox.env({
            "PATH": os.environ.get("SMA_JOB_PATH") or CLEAN_PATH,
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "SMA_JOB_ID": str(self.job_id),
            "SMA_RUNBOOK_NAME": runbook.name,
            "SMA_API_URL": self.settings.api_url,
            "SMA_JOB_TOKEN": self.token,
            **({"SMA_API_CA_FILE": self.sandbox.readable_copy(self.settings.api_ca_file)}
               if self.settings.api_ca_file else {}),
            "SMA_LOG_VERBOSE": "1" if runbook.log_verbose else "0",
            "SMA_LOG_PROGRESS": "1" if runbook.log_progress else "0",
            "SMA_LOG_DEBUG": "1" if runbook.log_debug else "0",
        })

    # --- while it runs -----------------------------------------------------------------

    def check_status(self, renew: bool) -> str | None:
        """The job's status as seen by this attempt (None: it is no longer ours); renews
        the lease when asked."""
        return check_status(self.engine, self.job_id, self.attempt, self.worker_name,
                            self.settings.job_lease_seconds, renew)

    def still_ours(self, conn: Connection) -> bool:
        """Renew the lease, if this run still has the job (see `claim.still_ours`)."""
        return still_ours(conn, self.job_id, self.attempt, self.worker_name,
                          self.settings.job_lease_seconds)

    def checkpoint(self, writer: StreamWriter, data: Any) -> None:
        """Seal the runbook's checkpoint with the job's keys and keep it with every record
        written before it (now, or with the next batch the database takes)."""
        self.unsealed_checkpoint = (data,)
        self.seal_checkpoint(writer)

    def seal_checkpoint(self, writer: StreamWriter, *, now: bool = False) -> None:
        """Seal the checkpoint that waits for the job's keys, once they can be had (the
        first checkpoint of a job asks for them)."""
        if self.unsealed_checkpoint is None:
            return
        keys = self.keys.get_soon(now=now)
        if keys is None:
            return
        data = self.unsealed_checkpoint[0]
        self.unsealed_checkpoint = None
        self.pending_checkpoint = (seal(keys, data),)
        writer.dirty = True
        writer.flush()

    def _finish(self, writer: StreamWriter, status: JobStatus, *, exit_code: int | None,
                reason: str | None = None, exception: str | None = None,
                usage: JobUsage | None = None) -> None:
        """The last records and the final status, in one transaction; tried again for
        SMA_DB_RETRY_SECONDS while the database cannot be reached."""
        if status == S.SUSPENDED:  # a checkpoint is kept only sealed: try once more
            self.seal_checkpoint(writer, now=True)
        give_up = time.monotonic() + self.settings.db_retry_seconds
        delay = 0.1
        wanted = status
        while True:
            status, flushed = wanted, False
            try:
                with self.transaction() as conn:
                    self.in_batch(conn)
                    fields = {"exit_code": exit_code, "status_reason": reason,
                              "exception": exception, "pid": None}
                    if usage is not None:
                        fields.update(cpu_seconds=usage.cpu_seconds,
                                      peak_memory_mb=usage.peak_memory_mb)
                    done = transition(conn, self.job_id, status, actor=self.actor,
                                      expect={"attempt": self.attempt}, **fields)
                    if not done and current_status(conn, self.job_id) == S.STOPPING.value:
                        # asked to stop just as it ended: the stop won the race
                        status = S.STOPPED
                        done = transition(conn, self.job_id, S.STOPPED, actor=self.actor,
                                          expect={"attempt": self.attempt},
                                          exit_code=exit_code, pid=None)
                    if done or self._attempt_now(conn) == self.attempt:
                        # a run that was taken over numbers nothing more
                        writer.flush(conn, retry=delay > 0.1)
                        flushed = True
            except Exception as exc:
                writer.rolled_back()
                if not is_transient(exc) or time.monotonic() + delay > give_up:
                    raise
                if delay == 0.1:
                    log.warning("job %s: the database is unreachable; trying again to record "
                                "that it ended (%s)", self.job_id, status.value)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            break
        if not flushed:
            writer.drop()
            log.warning("job %s was taken over by a later run while this one ended (%s); "
                        "its last records are left out", self.job_id, status.value)
            return
        writer.committed()
        if not done:
            log.info("job %s: not moved to %s; its status changed meanwhile", self.job_id, status)
        elif self.metrics is not None:
            duration = (utcnow() - self.run_started).total_seconds() \
                if self.run_started is not None else None
            self.metrics.job_finished(self.runbook.name, status.value, duration,
                                      0 if self.first_seq is None
                                      else writer.seq - self.first_seq)
        try:
            self._wake_waiting()
        except Exception:  # the reaper sends waiting jobs again in any case
            log.warning("job %s: could not wake the jobs waiting for its slot", self.job_id,
                        exc_info=True)

    def _attempt_now(self, conn: Connection) -> int | None:
        return conn.execute(select(_jobs.c.attempt).where(_jobs.c.id == self.job_id)).scalar()

    def _wake_waiting(self) -> None:
        """A slot of the runbook is free: send its oldest waiting jobs again (only for a
        runbook with max_concurrent_jobs: the limit was read at claim, so others pay nothing)."""
        limit = self.runbook.max_concurrent_jobs if self.runbook is not None else None
        if self.enqueue is None or not limit:
            return
        with read_connection(self.engine) as conn:
            waiting = conn.execute(
                select(_jobs.c.id, _jobs.c.worker_group)
                .where(_jobs.c.runbook_id == self.runbook.id,
                       _jobs.c.status.in_([S.NEW.value, S.RESUMING.value]))
                .order_by(_jobs.c.created_at).limit(limit)).all()
        for job_id, group in waiting:
            self.enqueue(str(job_id), group)


class _Capture:
    """The select loop over the runbook's stdout, stderr, record channel and exit."""

    def __init__(self, runner: JobRunner, proc: subprocess.Popen, record_fd: int,
                 writer: StreamWriter, timeout_seconds: int | None) -> None:
        self.runner = runner
        self.settings = runner.settings
        self.proc = proc
        self.writer = writer
        self.sel = selectors.DefaultSelector()
        self.pipes: dict[int, tuple[str, LineSplitter]] = {}
        for fd, kind in ((proc.stdout.fileno(), OUTPUT), (proc.stderr.fileno(), ERROR),
                         (record_fd, "record")):
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, kind)
            self.pipes[fd] = (kind, LineSplitter(self.settings.max_line_bytes, writer.masker))
        now = time.monotonic()
        self.timeout_seconds = timeout_seconds
        self.deadline = now + timeout_seconds if timeout_seconds else None
        self.next_control = now + _CONTROL_SECONDS
        self.lease_every = self.settings.job_lease_seconds / 3
        self.next_lease = now + self.lease_every
        self.running_due = now + self.settings.stream_batch_ms / 1000.0
        self.ending: Ending | None = None
        self.rusage = None  # the runbook's process's, once reaped
        self.exited = False  # seen through a pidfd, so the pid is not reaped (nor reused) yet
        self.control_failing = False
        self.total = 0
        try:
            self.max_records = configuration.current(runner.engine,
                                                     runner.settings)["max_job_records"]
        except Exception:  # noqa: BLE001 - a table not there yet, a busy database: no limit
            log.debug("configuration not read", exc_info=True)
            self.max_records = None

    def run(self) -> tuple[int, Ending | None]:
        pidfd = os.pidfd_open(self.proc.pid)
        self.sel.register(pidfd, selectors.EVENT_READ, "exit")
        drain_until: float | None = None
        try:
            while self.pipes or drain_until is None:
                self.sel_once(drain_until)
                now = time.monotonic()
                if self.runner.started is not None and now >= self.running_due:
                    self.record_running(now)
                if self.runner.running_refused and self.ending is None:
                    self.control()
                if self.writer.superseded and (self.ending is None
                                               or self.ending.status is not None):
                    self.end(None, "The job was taken over while the database was "
                                   "unreachable; this run ended.", grace=0)
                if drain_until is None and self.exited:
                    drain_until = now + _EXIT_DRAIN_SECONDS
                    self.sel.unregister(pidfd)
                if self.deadline is not None and now >= self.deadline:
                    self.deadline = None
                    self.end(S.FAILED, f"The job ran longer than its timeout of "
                                       f"{self.timeout_seconds} s; it was stopped.")
                if now >= self.next_control and drain_until is None:
                    self.control()
                if self.ending is not None and now >= self.ending.kill_at:
                    self.kill(signal.SIGKILL)
                if drain_until is not None and now >= drain_until and self.pipes:
                    # the runbook exited but something it started still holds its pipes
                    self.kill(signal.SIGKILL)
                    self.drain_all()
        finally:
            self.sel.close()
            os.close(pidfd)
        self.kill(signal.SIGKILL)  # children that outlive the runbook end with it
        code, self.rusage = reap(self.proc, timeout=30)
        return self.runner.sandbox.exit_status(code), self.ending

    def record_running(self, now: float) -> None:
        try:
            with self.runner.transaction() as conn:
                self.runner.record_running(conn)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.running_due = now + 1.0  # with the next batch, or in a second

    def kill(self, sig: int) -> None:
        self.runner.sandbox.signal(self.proc, sig)

    def sel_once(self, drain_until: float | None) -> None:
        now = time.monotonic()
        waits = [self.writer.due_in(), self.next_control - now]
        if self.runner.started is not None:
            waits.append(self.running_due - now)
        for at in (self.deadline, drain_until, self.ending and self.ending.kill_at):
            if at:
                waits.append(at - now)
        timeout = max(0.0, min(w for w in waits if w is not None))
        if self.writer.backlogged:
            # the database is away and holds up what it should have: read no more for now,
            # so the runbook waits on its own writes instead of this process's memory growing
            time.sleep(timeout)
            self.writer.flush_if_due()
            return
        # Read everything that is ready first, then deliver stdout, stderr and records in
        # that order: a record is written after the runbook flushed what it printed before
        # it, so this keeps print-then-output order. Mask records are applied before any of
        # it is even cut into lines: one is written before the runbook could print the
        # secret, so it is ready in this round (or was in an earlier one) whenever output
        # holding the secret is.
        ready: list[tuple[str, LineSplitter, bytes]] = []
        for key, _ in self.sel.select(timeout):
            if key.data == "exit":
                self.exited = True
                continue
            if key.fd not in self.pipes:
                continue
            kind, splitter = self.pipes[key.fd]
            try:
                data = os.read(key.fd, _READ)
            except BlockingIOError:
                continue
            if not data:  # the end of the pipe: its last line is delivered with the rest
                self.sel.unregister(key.fd)
                del self.pipes[key.fd]
            self.total += len(data)
            ready.append((kind, splitter, data))
        self.deliver_all(ready)
        too_many = self.max_records is not None and \
            self.writer.seq - self.runner.first_seq > self.max_records
        if (self.total > self.settings.job_output_limit or too_many) and self.ending is None:
            self.end(S.FAILED, (f"The job wrote more than the limit of {self.max_records} "
                                "records (max_job_records in /api/v1/admin/configuration); "
                                "it was stopped.") if too_many else
                     (f"The job wrote more than the output limit of "
                      f"{self.settings.job_output_limit} bytes "
                      "(SMA_JOB_OUTPUT_LIMIT); it was stopped."), grace=0)
            for fd in list(self.pipes):  # read no more of it
                self.sel.unregister(fd)
            self.pipes.clear()
            return
        self.writer.flush_if_due()

    def apply_masks(self, splitter: LineSplitter, data: bytes) -> None:
        """Mask the secrets announced in `data`, read from the record channel."""
        if splitter.buffer:  # a record begun in an earlier read
            data = splitter.buffer + data
        if b'"mask"' not in data:
            return
        for line in data.split(b"\n")[:-1]:
            if b'"mask"' in line:
                record = parse_record(line)
                if record.get("type") == "mask" and isinstance(record.get("value"), str):
                    self.writer.add_mask(record["value"])

    def control(self) -> None:
        """Renew the lease and act on a stop, suspend or takeover asked meanwhile."""
        now = time.monotonic()
        self.next_control = now + _CONTROL_SECONDS
        renew = now >= self.next_lease
        if renew:
            self.next_lease = now + self.lease_every
        try:
            status = self.runner.check_status(renew)
        except Exception as exc:  # the database is unreachable: keep running, try again
            if not self.control_failing:
                log.warning("job %s: status check failed: %s", self.runner.job_id,
                            str(exc).splitlines()[0], exc_info=not is_transient(exc))
            self.control_failing = True
            self.next_lease = now  # renew the lease as soon as the database answers
            return
        self.control_failing = False
        if self.runner.unsealed_checkpoint is not None:
            self.runner.seal_checkpoint(self.writer)
        if self.ending is not None and self.ending.status is None:
            return
        if status is None:
            self.end(None, "The job was taken over after its lease expired; this run ended.",
                     grace=0)
        elif status == S.STOPPING.value and (self.ending is None
                                              or self.ending.status != S.STOPPED):
            self.end(S.STOPPED, "Stopped on request.")
        elif status == S.SUSPENDING.value and self.ending is None:
            self.end(S.SUSPENDED, "Suspended on request; resume continues from the last "
                                  "checkpoint.")

    def end(self, status: JobStatus | None, reason: str, grace: float | None = None) -> None:
        """Ask the process group to end (SIGTERM), and kill it after the grace period."""
        grace = self.settings.kill_grace_seconds if grace is None else grace
        kill_at = time.monotonic() + grace
        if self.ending is not None:
            kill_at = min(kill_at, self.ending.kill_at)
        self.ending = Ending(status, reason, kill_at)
        if status is not None:
            self.writer.add(ERROR if status == S.FAILED else "Warning", reason)
        self.kill(signal.SIGKILL if grace <= 0 else signal.SIGTERM)

    def drain_all(self) -> None:
        """Read what is left in every pipe (in the order of `sel_once`) and close them."""
        ready: list[tuple[str, LineSplitter, bytes]] = []
        for fd, (kind, splitter) in self.pipes.items():
            chunks: list[bytes] = []
            for _ in range(64):  # what the pipe holds, not what a writer keeps adding
                try:
                    data = os.read(fd, _READ)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                chunks.append(data)
            if chunks:
                ready.append((kind, splitter, b"".join(chunks)))
            ready.append((kind, splitter, b""))
            self.sel.unregister(fd)
        self.pipes.clear()
        self.deliver_all(ready)

    def deliver_all(self, ready: list[tuple[str, LineSplitter, bytes]]) -> None:
        """Masks first, then stdout, stderr and records, in that order (see `sel_once`);
        empty data is the end of its pipe."""
        ready.sort(key=lambda item: _DELIVERY_ORDER[item[0]])
        for kind, splitter, data in ready:
            if kind == "record" and data:
                self.apply_masks(splitter, data)
        for kind, splitter, data in ready:
            self.deliver(kind, splitter.feed(data) if data else splitter.rest())

    def deliver(self, kind: str, lines: list[bytes]) -> None:
        if kind != "record":
            self.writer.add_lines(kind, lines)
            return
        for line in lines:
            if not line.strip():
                continue
            record = parse_record(line)
            if record.get("type") == "checkpoint":
                self.runner.checkpoint(self.writer, record.get("data"))
                continue
            if record.get("type") == "mask":  # applied before this round's output, as a rule
                if isinstance(record.get("value"), str):
                    self.writer.add_mask(record["value"])
                continue
            self.writer.add(record["stream"], record["text"], record.get("value"),
                            has_value="value" in record)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"The runbook was killed by {name}."
    return f"The runbook exited with code {code}."
