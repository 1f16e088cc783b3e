"""A process this one did not start itself but must supervise, signal and reap as its child:
a warm host the zygote cloned with CLONE_PARENT (smaworker/zygote.py)."""

from __future__ import annotations

import os
import select
import subprocess
import time


class ForkedProcess:
    """A host the zygote cloned as this process's child: what the runner, the supervisor
    and `resources.reap` use of a Popen (pid, args, stderr, returncode, poll, wait)."""

    leads_group = True  # the namespace's init leads the job's process group (Sandbox.signal)

    def __init__(self, pid: int, stderr_fd: int) -> None:
        self.pid = pid
        self.args = ["sma-host", str(pid)]
        self.stderr = open(stderr_fd, "rb")  # noqa: SIM115 - closed as a Popen's is
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (a wait for any child)
                self.returncode = 0
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
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
