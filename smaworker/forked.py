"""A process this one did not start itself but must supervise, signal and reap as its child:
a warm host the zygote cloned with CLONE_PARENT (smaworker/zygote.py).

That process is the init of the host's namespace. When the host ends it reports how, with
the usage of the job's processes, on its report pipe, and exits; its exit waits for the
namespace to be torn down (a few milliseconds, tens on a busy machine), so the supervisor
ends the job on the report (`report()`) and the process is reaped afterwards, before the
job's uid and folder are given back (warm.WarmHost.discard). An init that may take the next
host (`init`: smaworker.asked.Init) does not exit after its report when the job left
nothing running: it is then left alone (`cleans_up`), and ends when it is let go."""

from __future__ import annotations

import marshal
import os
import resource
import select
import subprocess
import time
from typing import Any


class ForkedProcess:
    """A host the zygote cloned as this process's child: what the runner, the supervisor
    and `resources.reap` use of a Popen (pid, args, stderr, returncode, poll, wait)."""

    leads_group = True  # the namespace's init leads the job's process group (Sandbox.signal)

    def __init__(self, pid: int, stderr_fd: int, report_fd: int | None = None,
                 init: Any = None) -> None:
        self.pid = pid
        # the init's socket (smaworker.asked.Init) when it may take the next host: once
        # it reported, it ends what the job left itself (then ends), and is not signalled
        self.init = init
        self.args = ["sma-host", str(pid)]
        self.stderr = open(stderr_fd, "rb")  # noqa: SIM115 - closed as a Popen's is
        self.returncode: int | None = None
        self.report_fd = report_fd  # readable once the init reported, or ended without
        self.reported: tuple[int, Any] | None = None  # (exit status, struct_rusage)

    def report(self) -> tuple[int, Any] | None:
        """How the host ended, as its init reported it: (its exit status, the usage of the
        job's processes, as os.wait4 gives it); None when the init ended without saying
        (killed; it could not make the namespace). Call it once the report pipe is
        readable: it reads what is there without waiting."""
        if self.reported is None and self.report_fd is not None:
            os.set_blocking(self.report_fd, False)
            try:
                data = os.read(self.report_fd, 4096)
            except BlockingIOError:
                return None
            except OSError:
                data = b""
            self._close_report()
            try:
                code, utime, stime, maxrss = marshal.loads(data)
                usage = resource.struct_rusage((utime, stime, maxrss) + (0,) * 13)
                self.reported = int(code), usage
            except (EOFError, ValueError, TypeError):  # nothing said: it ended without
                pass
        return self.reported

    @property
    def cleans_up(self) -> bool:
        """Whether the init reported its host's end and ends what the job left itself:
        signalling its group would end the init, which may take the next host."""
        return self.init is not None and self.reported is not None

    def _close_report(self) -> None:
        if self.report_fd is not None:
            os.close(self.report_fd)
            self.report_fd = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (a wait for any child)
                pid, status = self.pid, 0
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        if self.returncode is not None:
            self._close_report()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            pidfd = None
        try:
            while self.poll() is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout)
                if pidfd is None:
                    time.sleep(0.001)
                else:
                    select.select([pidfd], [], [], left)
        finally:
            if pidfd is not None:
                os.close(pidfd)
        return self.returncode
