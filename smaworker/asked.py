"""What forks warm hosts for this pool process when asked over a SOCK_SEQPACKET socket, and
its errors: the zygote (smaworker/zygote.py), or the init of a host whose job ended cleanly
(`Init`, runtime/sma_zygote.py `_init`). A request carries the host's spec and its pipes;
answers come in the order asked."""

from __future__ import annotations

import collections
import marshal
import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smaworker.sandbox import PRIVATE_TMP, Sandbox

if TYPE_CHECKING:
    from smaworker.zygote import PendingHost

ANSWER_SECONDS = 10.0  # a zygote that does not answer a request by then is let go


class ZygoteError(Exception):
    """The zygote could not fork a host: it said why."""


class ZygoteGone(ZygoteError):
    """The zygote did not answer: it ended, or hangs (a new one starts for the next host)."""


class Asked:
    """What forks hosts when asked over a SOCK_SEQPACKET socket: the zygote, or the init
    of a host whose job ended cleanly (`Init`). Answers come in the order asked."""

    what = "zygote"
    sandbox: Sandbox
    sock: socket.socket
    waiting: collections.deque[PendingHost]
    answered: int

    def request(self, *, workdir: Path, env: dict[str, str], umask: int,
                passwd: bytes | None, kept: list[str], cgroup_procs: str | None,
                spec_r: int, stdout_w: int, stderr_w: int, report_w: int,
                control: int | None = None) -> None:
        """Ask for a host with these pipes, in `workdir`, with `env` (its answer is read by
        `answer()`, answers come in the order asked); `control`: the socket of a new init
        that may take more hosts (`Init`). ZygoteGone when it cannot be asked."""
        request = {
            "workdir": str(workdir), "env": env, "umask": umask, "passwd": passwd,
            "kept": kept, "cgroup_procs": cgroup_procs,
            "namespaces": self.sandbox.bwrap is not None, "tmp": PRIVATE_TMP,
            "run": str(self.sandbox.jobs_root / "run") if self.sandbox.jobs_root else "",
        }
        try:
            socket.send_fds(self.sock, [marshal.dumps(request, 4)],
                            [spec_r, stdout_w, stderr_w, report_w]
                            + ([control] if control is not None else []))
        except OSError as exc:  # it ended: its socket broke
            self.close()
            raise ZygoteGone(f"the {self.what} did not take the request: {exc}") from exc

    def answer(self) -> int:
        """The pid of the host asked for first and not answered yet (this process's child;
        an init's own, for an init that forked its next host); ZygoteError when it could
        not be forked."""
        try:
            answer = self.sock.recv(1 << 16)
        except OSError as exc:  # its socket broke, or no answer in time
            self.close()
            raise ZygoteGone(f"the {self.what} did not answer: {exc}") from exc
        if not answer:
            self.close()
            raise ZygoteGone(f"the {self.what} ended")
        reply: dict[str, Any] = marshal.loads(answer)
        self.answered += 1
        if "error" in reply:
            raise ZygoteError(reply["error"])
        return int(reply["pid"])

    def settle(self, host: PendingHost) -> None:
        """Read answers until `host`'s is in (those of the hosts asked for before it too)."""
        while host.outcome is None:
            first = self.waiting.popleft()
            try:
                first.outcome = self.answer()
            except ZygoteGone as exc:
                first.outcome = exc
                while self.waiting:  # none of the others will be answered either
                    self.waiting.popleft().outcome = exc
            except ZygoteError as exc:
                first.outcome = exc


class Init(Asked):
    """The init (B) of a forked host, which may take the next host of this pool process in
    its namespace once its job ended and left nothing running there (runtime/sma_zygote.py
    `_init`): asked, it binds a new folder, /tmp and /etc/passwd in place of the last
    host's and forks the next host itself. A fork instead of two: the zygote's clone of B
    and B's exit were about a third of a trivial job's CPU."""

    what = "warm host's init"

    def __init__(self, sandbox: Sandbox, sock: socket.socket) -> None:
        self.sandbox = sandbox
        sock.settimeout(ANSWER_SECONDS)
        self.sock = sock
        self.waiting = collections.deque()
        self.answered = 0
        self.pid = 0  # this process's child, once the zygote answered with it
        self.pidfd: int | None = None  # (a pid this process may have reaped is no target)

    def started(self, pid: int) -> None:
        self.pid = pid
        try:
            self.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            pass

    def answer(self) -> int:
        super().answer()  # (its own pid in its namespace: 1)
        return self.pid

    def free(self) -> bool:
        """Whether it may take the next host: after its report, it says so once nothing of
        the job runs on in its namespace and the job's folders are unmounted there; False
        when it ended instead (or did not say so within ANSWER_SECONDS)."""
        try:
            said = self.sock.recv(1 << 16)
        except OSError:
            return False
        try:
            return bool(said) and marshal.loads(said).get("free") is True
        except (EOFError, ValueError, TypeError, AttributeError):
            return False

    def close(self) -> None:
        """Let it go: EOF on its socket ends it (and whatever is left in its namespace)."""
        self.sock.close()

    def end(self) -> None:
        """End it, with whatever is left in its namespace, and reap it (unless it was)."""
        self.close()
        if self.pidfd is None:
            return
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED)
        except (ProcessLookupError, ChildProcessError):
            pass
        finally:
            os.close(self.pidfd)
            self.pidfd = None
