"""Runs one job: claim it, start its process, capture what it writes, record how it ended."""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from smacommon.db import get_engine
from smacommon.models import Job, JobStream, Runbook, RunbookVersion
from smacommon.process import tied_to_parent
from smacommon.services.jobs import transition
from smacommon.settings import Settings
from smacommon.states import JobStatus
from smacommon.streams import DEBUG, ERROR, OUTPUT, PROGRESS, VERBOSE
from smaworker.capture import LineSplitter, StreamWriter, parse_record
from smaworker.engines import JobContext
from smaworker.engines import get_engine as get_runbook_engine

log = logging.getLogger(__name__)

_READ = 65536
_EXIT_DRAIN_SECONDS = 0.5
_CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Outcome:
    exit_code: int | None
    reason: str | None = None      # why the worker ended it (timeout, output limit)
    killed: bool = False


class JobRunner:
    """Everything the worker does for one `sma.run_job` message."""

    def __init__(self, job_id: str, settings: Settings, worker_name: str, publish=None) -> None:
        self.job_id = uuid.UUID(job_id)
        self.settings = settings
        self.worker_name = worker_name
        self.publish = publish
        self.engine = get_engine(settings.effective_database_url)

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def run(self) -> None:
        with self.engine.begin() as conn:
            claimed = transition(conn, self.job_id, JobStatus.ACTIVATING,
                                 sources=frozenset({JobStatus.NEW, JobStatus.RESUMING}),
                                 worker=self.worker_name, status_reason=None)
        if not claimed:
            log.info("job %s: already claimed or no longer runnable; message dropped", self.job_id)
            return
        workdir = None
        try:
            workdir = Path(tempfile.mkdtemp(prefix=f"sma-job-{self.job_id.hex[:8]}-"))
            self._run_claimed(workdir)
        except Exception as exc:
            log.exception("job %s: worker error", self.job_id)
            with self.engine.begin() as conn:
                transition(conn, self.job_id, JobStatus.FAILED, exception=f"{exc}",
                           status_reason=f"The worker failed to run the job: {exc}")
        finally:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)

    def _load(self) -> tuple[Job, Runbook, str, list[dict[str, Any]], int]:
        with self._session() as s:
            job, runbook, version = s.execute(
                select(Job, Runbook, RunbookVersion)
                .join(Runbook, Runbook.id == Job.runbook_id)
                .outerjoin(RunbookVersion, RunbookVersion.id == Job.runbook_version_id)
                .where(Job.id == self.job_id)).one()
            if job.is_test:
                from smacommon.services.runbooks import draft_parameters

                content = job.test_content or ""
                try:
                    declared = draft_parameters(runbook, content)
                except Exception:
                    declared = []
            else:
                content, declared = version.content, version.parameters
            last_seq = 0
            if job.start_time is not None:  # it ran before: go on numbering after its records
                last_seq = s.scalar(select(func.max(JobStream.seq))
                                    .where(JobStream.job_id == self.job_id)) or 0
            s.expunge_all()
            return job, runbook, content, declared, last_seq

    def _run_claimed(self, workdir: Path) -> None:
        job, runbook, content, declared, last_seq = self._load()
        engine = get_runbook_engine(runbook.runbook_type)
        writer = StreamWriter(
            self.engine, self.job_id, next_seq=last_seq + 1,
            batch_lines=self.settings.stream_batch_lines,
            batch_ms=self.settings.stream_batch_ms, publish=self.publish,
            keep={VERBOSE: runbook.log_verbose, PROGRESS: runbook.log_progress,
                  DEBUG: runbook.log_debug})
        if not engine.available():
            reason = (f"Worker {self.worker_name} cannot run {runbook.runbook_type} runbooks: "
                      f"{engine.executable or runbook.runbook_type} is not installed there.")
            writer.add(ERROR, reason)
            self._finish(writer, JobStatus.FAILED, exit_code=None, reason=reason,
                         exception=reason)
            return
        script = workdir / f"runbook{engine.suffix}"
        script.write_text(content, encoding="utf-8")
        record_r, record_w = os.pipe()
        try:
            ctx = JobContext(
                job_id=str(self.job_id), workdir=workdir, script_path=script,
                parameters=dict(job.parameters or {}), declared=list(declared or []),
                log_verbose=runbook.log_verbose, log_progress=runbook.log_progress,
                log_debug=runbook.log_debug, env=self._base_env(workdir, record_w, runbook))
            argv, extra = engine.command(ctx)
            argv, options = tied_to_parent(argv)
            proc = subprocess.Popen(
                argv, cwd=workdir, env={**ctx.env, **extra}, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(record_w,),
                start_new_session=True, close_fds=True, **options)
        finally:
            os.close(record_w)
        try:
            with self.engine.begin() as conn:
                running = transition(conn, self.job_id, JobStatus.RUNNING, pid=proc.pid)
            if not running:  # stopped while activating: end it before it does anything
                _kill_group(proc, signal.SIGKILL)
            outcome = self._capture(proc, record_r, writer, runbook.timeout_seconds)
        finally:
            os.close(record_r)
            _kill_group(proc, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=10)
        if outcome.exit_code == 0 and not outcome.reason:
            self._finish(writer, JobStatus.COMPLETED, exit_code=0)
        else:
            tail = "\n".join(writer.error_tail)[-4000:]
            reason = outcome.reason or _exit_reason(outcome.exit_code)
            self._finish(writer, JobStatus.FAILED, exit_code=outcome.exit_code, reason=reason,
                         exception=tail or reason)

    def _base_env(self, workdir: Path, record_fd: int, runbook: Runbook) -> dict[str, str]:
        return {
            "PATH": os.environ.get("SMA_JOB_PATH") or _CLEAN_PATH,
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "SMA_JOB_ID": str(self.job_id),
            "SMA_RUNBOOK_NAME": runbook.name,
            "SMA_API_URL": self.settings.api_url,
            "SMA_RECORD_FD": str(record_fd),
            "SMA_LOG_VERBOSE": "1" if runbook.log_verbose else "0",
            "SMA_LOG_PROGRESS": "1" if runbook.log_progress else "0",
            "SMA_LOG_DEBUG": "1" if runbook.log_debug else "0",
        }

    def _capture(self, proc: subprocess.Popen, record_fd: int, writer: StreamWriter,
                 timeout_seconds: int | None) -> Outcome:
        limit = self.settings.job_output_limit
        max_line = self.settings.max_line_bytes
        sel = selectors.DefaultSelector()
        pipes: dict[int, tuple[str, LineSplitter]] = {}
        for fd, kind in ((proc.stdout.fileno(), OUTPUT), (proc.stderr.fileno(), ERROR),
                         (record_fd, "record")):
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, kind)
            pipes[fd] = (kind, LineSplitter(max_line))
        pidfd = os.pidfd_open(proc.pid)
        sel.register(pidfd, selectors.EVENT_READ, "exit")
        started = time.monotonic()
        deadline = started + timeout_seconds if timeout_seconds else None
        drain_until: float | None = None
        total = 0
        outcome: Outcome | None = None
        try:
            while pipes or drain_until is None:
                now = time.monotonic()
                waits = [w for w in (writer.due_in(),
                                     None if deadline is None else deadline - now,
                                     None if drain_until is None else drain_until - now)
                         if w is not None]
                events = sel.select(max(0.0, min(waits)) if waits else None)
                for key, _ in events:
                    fd = key.fd
                    if key.data == "exit":
                        sel.unregister(pidfd)
                        drain_until = time.monotonic() + _EXIT_DRAIN_SECONDS
                        continue
                    kind, splitter = pipes[fd]
                    try:
                        data = os.read(fd, _READ)
                    except BlockingIOError:
                        continue
                    if not data:
                        self._deliver(writer, kind, splitter.rest())
                        sel.unregister(fd)
                        del pipes[fd]
                        continue
                    total += len(data)
                    self._deliver(writer, kind, splitter.feed(data))
                    if total > limit and outcome is None:
                        _kill_group(proc, signal.SIGKILL)
                        reason = (f"The job wrote more than the output limit of {limit} bytes "
                                  "(SMA_JOB_OUTPUT_LIMIT); it was stopped.")
                        writer.add(ERROR, reason)
                        outcome = Outcome(None, reason, killed=True)
                        _close_all(sel, pipes)
                        break
                writer.flush_if_due()
                now = time.monotonic()
                if deadline is not None and now >= deadline and outcome is None:
                    reason = f"The job ran longer than its timeout of {timeout_seconds} s; " \
                             "it was stopped."
                    self._terminate(proc)
                    writer.add(ERROR, reason)
                    outcome = Outcome(None, reason, killed=True)
                    deadline = None
                if drain_until is not None and now >= drain_until and pipes:
                    # the runbook exited but something it started still holds its pipes
                    _kill_group(proc, signal.SIGKILL)
                    for fd, (kind, splitter) in list(pipes.items()):
                        self._drain(fd, kind, splitter, writer)
                    _close_all(sel, pipes)
                if outcome is not None and outcome.killed and proc.poll() is not None:
                    for fd, (kind, splitter) in list(pipes.items()):
                        self._drain(fd, kind, splitter, writer)
                    _close_all(sel, pipes)
                    break
        finally:
            sel.close()
            os.close(pidfd)
        _kill_group(proc, signal.SIGKILL)  # children that outlive the runbook end with it
        code = proc.wait(timeout=30)
        if outcome is not None:
            outcome.exit_code = code
            return outcome
        return Outcome(code)

    def _drain(self, fd: int, kind: str, splitter: LineSplitter, writer: StreamWriter) -> None:
        while True:
            try:
                data = os.read(fd, _READ)
            except (BlockingIOError, OSError):
                break
            if not data:
                break
            self._deliver(writer, kind, splitter.feed(data))
        self._deliver(writer, kind, splitter.rest())

    def _deliver(self, writer: StreamWriter, kind: str, lines: list[bytes]) -> None:
        if kind != "record":
            writer.add_lines(kind, lines)
            return
        for line in lines:
            if not line.strip():
                continue
            record = parse_record(line)
            if record.get("type") == "checkpoint":
                self._checkpoint(record.get("data"))
                continue
            writer.add(record["stream"], record["text"], record.get("value"),
                       has_value="value" in record)

    def _checkpoint(self, data: Any) -> None:
        table = Job.__table__
        with self.engine.begin() as conn:
            conn.execute(update(table).where(table.c.id == self.job_id).values(checkpoint=data))

    def _terminate(self, proc: subprocess.Popen) -> None:
        _kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=self.settings.kill_grace_seconds)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(proc, signal.SIGKILL)

    def _finish(self, writer: StreamWriter, status: JobStatus, *, exit_code: int | None,
                reason: str | None = None, exception: str | None = None) -> None:
        """The last records and the final status, in one transaction."""
        with self.engine.begin() as conn:
            writer.flush(conn)
            done = transition(conn, self.job_id, status, exit_code=exit_code,
                              status_reason=reason, exception=exception, pid=None)
        writer.announce()
        if not done:
            log.info("job %s: not moved to %s; its status changed meanwhile", self.job_id, status)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"The runbook was killed by {name}."
    return f"The runbook exited with code {code}."


def _close_all(sel: selectors.BaseSelector, pipes: dict) -> None:
    for fd in list(pipes):
        sel.unregister(fd)
    pipes.clear()


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the job's whole process group (the runbook and everything it started)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
