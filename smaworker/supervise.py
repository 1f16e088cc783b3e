"""Supervises the runbook's process while it runs: reads its stdout (lines, and the record
channel's masks, checkpoints, suspend requests and records in among them) and stderr,
renews the job's lease and acts on a stop, suspend or takeover about once a second, and
ends the process group on a timeout or an output limit.

Lines and records of stdout are delivered in exactly the order the runbook wrote them (one
pipe: see smaworker.channel); stderr is a pipe of its own, in order within itself (see
`Supervisor.sel_once`). What is delivered goes to the run's StreamWriter, which writes it
in batches.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smacommon.db import is_transient
from smacommon.services import configuration
from smacommon.states import JobStatus, ReasonCode
from smacommon.streams import ERROR, OUTPUT
from smaworker import shutdown
from smaworker.capture import StreamWriter
from smaworker.channel import RECORD, TEXT, Demux
from smaworker.lease import RENEW_WITHIN_SECONDS
from smaworker.lines import LineSplitter, parse_record
from smaworker.resources import reap

if TYPE_CHECKING:
    from smaworker.runner import JobRunner

log = logging.getLogger(__name__)

_READ = 65536
_EXIT_DRAIN_SECONDS = 0.5
_CONTROL_SECONDS = RENEW_WITHIN_SECONDS  # and the lease is renewed after an outage
_DELIVERY_ORDER = {OUTPUT: 0, ERROR: 1}


@dataclass
class Ending:
    """Why the worker is ending the runbook's process group, and the status that follows."""

    status: JobStatus | None       # None: the job is no longer ours; record nothing
    reason: str
    kill_at: float                 # SIGKILL follows SIGTERM at this time
    code: ReasonCode | None = None


class Supervisor:
    """The select loop over the runbook's stdout, stderr, record channel and exit."""

    def __init__(self, runner: JobRunner, proc: subprocess.Popen, stdout_fd: int, tag: str,
                 writer: StreamWriter, timeout_seconds: int | None) -> None:
        self.runner = runner
        self.settings = runner.settings
        self.proc = proc
        self.writer = writer
        self.sel = selectors.DefaultSelector()
        self.demux = Demux(tag, self.settings.max_line_bytes)  # stdout: lines and records
        self.stdout_fd = stdout_fd
        self.pipes: dict[int, tuple[str, LineSplitter]] = {}
        for fd, kind in ((proc.stderr.fileno(), ERROR), (stdout_fd, OUTPUT)):  # read order
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
        # a forked host's init reports the host's end before its own exit (smaworker/forked.py)
        report = getattr(self.proc, "report_fd", None)
        exits = [pidfd] if report is None else [pidfd, report]
        if report is not None:
            self.sel.register(report, selectors.EVENT_READ, "exit")
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
                    for fd in exits:
                        self.sel.unregister(fd)
                if self.deadline is not None and now >= self.deadline:
                    self.deadline = None
                    self.end(JobStatus.FAILED, f"The job ran longer than its timeout of "
                                               f"{self.timeout_seconds} s; it was stopped.")
                if now >= self.next_control and drain_until is None:
                    self.control()
                if self.ending is None and drain_until is None:
                    self.check_shutdown(now)
                if self.ending is not None and now >= self.ending.kill_at:
                    self.kill(signal.SIGKILL)
                if drain_until is not None and now >= drain_until and self.pipes:
                    # the runbook exited but something it started still holds its pipes
                    self.kill(signal.SIGKILL)
                    self.drain_all()
        finally:
            self.sel.close()
            os.close(pidfd)
        # read first: an init that reported, and may take another host, ends what the job
        # left itself (Sandbox.signal leaves it alone)
        reported = self.proc.report() if report is not None else None
        self.kill(signal.SIGKILL)  # children that outlive the runbook end with it
        # reaped later, after the final status, before its uid is given back
        code, self.rusage = reported or reap(self.proc, timeout=30)
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
        for at in (self.deadline, drain_until, self.ending and self.ending.kill_at,
                   self.ending is None and shutdown.deadline()):
            if at:
                waits.append(at - now)
        timeout = max(0.0, min(w for w in waits if w is not None))
        if self.writer.backlogged:
            # the database is away and holds up what it should have: read no more for now,
            # so the runbook waits on its own writes instead of this process's memory growing
            time.sleep(timeout)
            self.writer.flush_if_due()
            return
        # Read stderr, then stdout, then deliver stdout (its lines and records in the order
        # written), then stderr. Stdout is read even when only stderr was ready: a mask
        # record is written before the runbook can print the secret, so whatever secret is
        # read from stderr, the record that masks it is read by now and applied first.
        ready: list[tuple[str, LineSplitter, bytes]] = []
        readable = set()
        for key, _ in self.sel.select(timeout):
            if key.data == "exit":
                self.exited = True
            elif key.fd in self.pipes:
                readable.add(key.fd)
        for fd in list(self.pipes):
            if fd not in readable and not (fd == self.stdout_fd and readable):
                continue
            kind, splitter = self.pipes[fd]
            try:
                data = os.read(fd, _READ)
            except BlockingIOError:
                continue
            if not data:  # the end of the pipe: its last line is delivered with the rest
                self.sel.unregister(fd)
                del self.pipes[fd]
            self.total += len(data)
            ready.append((kind, splitter, data))
        self.deliver_all(ready)
        too_many = self.max_records is not None and \
            self.writer.seq - self.runner.first_seq > self.max_records
        if (self.total > self.settings.job_output_limit or too_many) and self.ending is None:
            self.end(JobStatus.FAILED,
                     (f"The job wrote more than the limit of {self.max_records} "
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
        elif status == JobStatus.STOPPING.value and (
                self.ending is None or self.ending.status != JobStatus.STOPPED):
            self.end(JobStatus.STOPPED, "Stopped on request.")
        elif status == JobStatus.SUSPENDING.value and self.ending is None:
            self.end(JobStatus.SUSPENDED, "Suspended on request; resume continues from the "
                                          "last checkpoint.")

    def check_shutdown(self, now: float) -> None:
        """The worker is shutting down and the job did not end within the grace period:
        suspend it, to resume from its last checkpoint when a worker of its group is back."""
        at = shutdown.deadline()
        if at is not None and now >= at:
            group = self.settings.worker_group
            self.end(JobStatus.SUSPENDED,
                     f"Suspended: the worker {self.runner.worker_name} shut down before the "
                     f"job ended; it resumes from its last checkpoint as soon as a worker of "
                     f"group {group!r} is online.", code=ReasonCode.WORKER_SHUTDOWN)

    def end(self, status: JobStatus | None, reason: str, grace: float | None = None,
            code: ReasonCode | None = None) -> None:
        """Ask the process group to end (SIGTERM), and kill it after the grace period."""
        grace = self.settings.kill_grace_seconds if grace is None else grace
        kill_at = time.monotonic() + grace
        if self.ending is not None:
            kill_at = min(kill_at, self.ending.kill_at)
        self.ending = Ending(status, reason, kill_at, code)
        if status is not None:
            self.writer.add(ERROR if status == JobStatus.FAILED else "Warning", reason)
        self.kill(signal.SIGKILL if grace <= 0 else signal.SIGTERM)

    def drain_all(self) -> None:
        """Read what is left in every pipe (stderr, then stdout, as `sel_once`) and close
        them."""
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
        """Stdout, then stderr (see `sel_once`); empty data is the end of its pipe."""
        ready.sort(key=lambda item: _DELIVERY_ORDER[item[0]])
        for kind, splitter, data in ready:
            if kind == OUTPUT:
                self.deliver_stdout(splitter, data)
            else:
                self.writer.add_lines(kind, splitter.feed(data) if data else splitter.rest())

    def deliver_stdout(self, splitter: LineSplitter, data: bytes) -> None:
        """Lines and records, in the order the runbook wrote them."""
        for kind, piece in self.demux.feed(data):
            if kind == TEXT:
                self.writer.add_lines(OUTPUT, splitter.feed(piece))
                continue
            # a record ends the line printed before it, so it cannot come out after it
            self.writer.add_lines(OUTPUT, splitter.rest())
            if kind == RECORD:
                self.deliver_record(piece)
            else:
                self.writer.add(ERROR, f"A record longer than {self.demux.max_record} "
                                       "bytes (SMA_MAX_LINE_BYTES) was left out.")
        if not data:
            self.writer.add_lines(OUTPUT, splitter.rest())

    def deliver_record(self, line: bytes) -> None:
        if not line.strip():
            return
        record = parse_record(line)
        if record.get("type") == "checkpoint":
            self.runner.checkpoint(self.writer, record.get("data"))
            return
        if record.get("type") == "mask":
            if isinstance(record.get("value"), str):
                self.writer.add_mask(record["value"])
            return
        if record.get("type") == "suspend":  # PowerShell's Suspend-Workflow
            if self.ending is None:
                self.end(JobStatus.SUSPENDED, "Suspended by its runbook; resumed, it runs "
                                              "again from the start with its last checkpoint.")
            return
        self.writer.add(record["stream"], record["text"], record.get("value"),
                        has_value="value" in record)
