"""What one job is given and what it used: its uid, its limits, its cgroup where there can
be one, and afterwards its CPU time, peak memory and the limit that ended it.

The per-process part (the uid pool, the delegated cgroup) is worked out once, at the first
job of a worker process; a job then costs a few system calls: an flock for its uid, an
environment variable for its limits (see smaworker/limits.py), and with bubblewrap and a
uid of its own a small memfd for its /etc/passwd.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smacommon.settings import Settings
from smaworker.cgroups import JobCgroup, delegated_root
from smaworker.engines import Engine
from smaworker.jobsroot import uid_locks_folder
from smaworker.limits import JobLimits, limit_reached, prlimit_argv, rlimit_spec
from smaworker.sandbox import Sandbox
from smaworker.uids import JobUid, UidPool, passwd_for

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36


@dataclass
class _ProcessState:
    pool: UidPool | None
    cgroup_root: Path | None
    passwd: str | None  # /etc/passwd, for the job's view of it (bubblewrap and own uids)


_state: _ProcessState | None = None


def _process_state(sandbox: Sandbox, settings: Settings) -> _ProcessState:
    global _state
    if _state is not None:
        return _state
    pool = passwd = None
    if sandbox.uid is not None and settings.job_uids is not None:
        pool = UidPool(uid_locks_folder(), settings.job_uids, sandbox.gid,
                       shutil.which("setpriv"), sweep=sandbox.bwrap is None)
        if sandbox.bwrap is not None:
            passwd = Path("/etc/passwd").read_text(encoding="utf-8", errors="replace")
    root, why = delegated_root() if settings.job_cgroups else (None, "SMA_JOB_CGROUPS=false")
    # said once for the worker, by its main process (limits_said); here only for debugging
    log.debug("%s", _limits_line(root, why))
    if sandbox.bwrap is not None and root is None:
        # bubblewrap's init reaps the runbook, and the outer bwrap leaves that init to
        # whoever adopts it: adopt it here, so its CPU time and peak memory (the job's)
        # are this process's to read when it is reaped
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _state = _ProcessState(pool, root, passwd)
    return _state


def _limits_line(root: Path | None, why: str) -> str:
    if root is None:
        return f"jobs' memory and process limits are per process (setrlimit), not per job: {why}"
    return f"every job gets a cgroup in {root}"


def limits_said(settings: Settings) -> None:
    """Log, once for the worker, how its jobs' limits are kept (a cgroup per job or not)."""
    root, why = delegated_root() if settings.job_cgroups else (None, "SMA_JOB_CGROUPS=false")
    log.info("%s", _limits_line(root, why))


@dataclass
class JobUsage:
    """What a job used, as far as the worker can measure it (None: not known)."""

    cpu_seconds: float | None = None
    peak_memory_mb: int | None = None


class JobResources:
    """One job's uid, limits and cgroup, from its claim until `release()`."""

    def __init__(self, sandbox: Sandbox, settings: Settings, runbook: Any,
                 job_hex: str) -> None:
        self.sandbox = sandbox
        self.limits = JobLimits.for_runbook(runbook, settings)
        state = _process_state(sandbox, settings)
        self.state = state
        self.held: JobUid | None = state.pool.claim() if state.pool is not None else None
        self.uid = self.held.uid if self.held is not None else sandbox.uid
        self.cgroup: JobCgroup | None = None
        if state.cgroup_root is not None:
            try:
                self.cgroup = JobCgroup(state.cgroup_root, job_hex, self.limits.max_memory_mb,
                                        self.limits.max_processes)
            except BaseException:
                self.release()
                raise
        self.rlimits = self.limits.rlimits(in_cgroup=self.cgroup is not None)
        self.forked = False  # its process is a zygote's fork: the init of its namespace
        self._fds: list[int] = []
        self._adopted(wait=False)  # an earlier job's init, left when its run broke off

    def apply(self, engine: Engine, argv: list[str], env: dict[str, str]) -> list[str]:
        """`argv` and `env` (changed in place) so the job's processes run within its
        limits: its runtime sets them, or prlimit does."""
        env["SMA_RLIMITS"] = rlimit_spec(self.rlimits)
        if engine.applies_limits:
            return argv
        return prlimit_argv(self.rlimits, argv)

    def passwd_fd(self, workdir: Path) -> int | None:
        """A file descriptor of /etc/passwd as the job sees it (its own uid named as
        SMA_JOB_USER), for bubblewrap to mount; None when the real one will do."""
        text = self.passwd(workdir)
        if text is None:
            return None
        fd = os.memfd_create("sma-passwd", os.MFD_CLOEXEC)
        self._fds.append(fd)
        os.write(fd, text)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def passwd(self, workdir: Path) -> bytes | None:
        """/etc/passwd as the job sees it; None when the real one will do."""
        if self.held is None or self.state.passwd is None:
            return None
        return passwd_for(self.state.passwd, self.sandbox.user, self.uid, self.sandbox.gid,
                          str(workdir))

    def started(self) -> None:
        """The job's process runs: close what was only passed to it."""
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def popen_options(self, preexec: Any = None) -> dict[str, Any]:
        """Popen options: with a uid of its own, the job makes files its group (every job's)
        may write, as when all jobs shared SMA_JOB_USER's uid (files it shares through
        /tmp and the like stay shared; its own folder stays private, 0700). A preexec_fn
        only to enter a cgroup: without one, Python spawns with vfork (the fast path)."""
        options: dict[str, Any] = {"preexec_fn": preexec}
        if self.held is not None:
            options["umask"] = 0o002
        if self.cgroup is not None:
            enter = self.cgroup.enter
            if preexec is None:
                options["preexec_fn"] = enter
            else:
                def both() -> None:
                    enter()
                    preexec()
                options["preexec_fn"] = both
        return options

    def usage(self, rusage: Any) -> JobUsage:
        """CPU time and peak memory: the cgroup's figures, else those of the job's reaped
        processes (`rusage` of its first process, and of bubblewrap's init)."""
        if self.cgroup is not None:
            cpu, peak = self.cgroup.usage()
            return JobUsage(cpu, peak)
        # The first process was spawned with vfork, so its maxrss starts at this worker's
        # own: only bubblewrap's init (a fork of the small outer bwrap, which reaped the
        # runbook) tells the job's peak memory; the largest process's, not the sum.
        if rusage is None:
            return JobUsage()
        cpu = rusage.ru_utime + rusage.ru_stime
        if self.forked:  # its init, forked from the zygote, reaped every process of the job
            return JobUsage(round(cpu, 3), -(-rusage.ru_maxrss // 1024))
        if self.sandbox.bwrap is None:
            return JobUsage(round(cpu, 3), None)
        adopted = self._adopted(wait=True)
        if not adopted:
            return JobUsage()  # bubblewrap's init was not reaped here: nothing reliable
        cpu += sum(u.ru_utime + u.ru_stime for u in adopted)
        peak_kib = max(u.ru_maxrss for u in adopted)
        return JobUsage(round(cpu, 3), -(-peak_kib // 1024))

    def _adopted(self, wait: bool) -> list[Any]:
        """Reap bubblewrap's init, which the worker adopted when the outer bwrap ended
        (`wait`: for it to end, right after the outer bwrap)."""
        if self.sandbox.bwrap is None or self.cgroup is not None:
            return []
        found: list[Any] = []
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                pid, _, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                found.append(rusage)
                continue
            if found or not wait:
                break
            _wait_for_children(deadline)
        return found


    def limit_hit(self, exit_code: int | None, error_tail: list[str],
                  usage: JobUsage) -> str | None:
        """The limit that ended the job (which failed), None when none did."""
        hits = self.cgroup.hits() if self.cgroup is not None else []
        return limit_reached(self.limits, exit_code, error_tail, usage.cpu_seconds, hits)

    def release(self) -> None:
        """Give back the uid, remove the cgroup (ending what is left in it)."""
        self.started()
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self.held is not None:
            self.held.release()
            self.held = None


def reap(proc: subprocess.Popen, timeout: float) -> tuple[int, Any]:
    """Wait for `proc` (already ended or being killed) with wait4, which also gives its
    resource usage and that of the processes it reaped; (Popen's returncode, rusage)."""
    if proc.returncode is not None:  # reaped already: no usage to be had
        return proc.returncode, None
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere meanwhile
            return proc.wait(timeout=timeout), None
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, rusage
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        time.sleep(0.001)


def _wait_for_children(deadline: float) -> None:
    """Sleep until one of this process's children ends (bubblewrap's init, adopted: it exits
    a moment after the outer bwrap), or until `deadline`; woken by pidfds, not by polling,
    since this wait is on every job's path."""
    fds = []
    try:
        for pid in _own_children():
            try:
                fds.append(os.pidfd_open(pid))
            except OSError:  # ended meanwhile: wait4 will find it
                return
        if not fds:
            time.sleep(0.001)
            return
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        poller.poll(max(0.0, deadline - time.monotonic()) * 1000)
    finally:
        for fd in fds:
            os.close(fd)


def _own_children() -> list[int]:
    pids = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as fh:
                pids += [int(p) for p in fh.read().split()]
        except (OSError, ValueError):
            continue
    return pids
