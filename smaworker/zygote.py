"""The pool process's side of the warm engine's zygote (runtime/sma_zygote.py): a root
Python process, started once per pool process with sma's helpers and the common modules
imported, that forks each warm host in its own namespaces instead of an interpreter and
bubblewrap starting for it (about 9 ms of CPU for a host instead of about 17).

A forked host is the pool process's own child (the zygote clones its init with
CLONE_PARENT), so the runner supervises, signals and reaps it as it does a cold job's bwrap,
through `smaworker.forked.ForkedProcess`, which answers for it what the runner asks of a
Popen.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import subprocess
from pathlib import Path

from smacommon.process import tied_to_parent
from smaworker.asked import ANSWER_SECONDS, Asked, Init, ZygoteError, ZygoteGone
from smaworker.channel import new_tag
from smaworker.forked import ForkedProcess
from smaworker.limits import rlimit_spec
from smaworker.resources import JobResources
from smaworker.sandbox import CLEAN_PATH, Sandbox, kept_in_tmp

log = logging.getLogger(__name__)


class Zygote(Asked):
    """This pool process's zygote, from its start until `close()` or its death."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.owner = os.getpid()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv, options = tied_to_parent([
                sandbox.python, "-I", "-u", str(sandbox.runtime_dir / "sma_zygote.py"),
                str(theirs.fileno())])
            # what a host's interpreter starts with (its locale, UTF-8 mode); each host then
            # takes its own environment
            env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                   "PYTHONUTF8": "1"}
            self.proc = subprocess.Popen(argv, env=env, cwd="/", stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
                                         close_fds=True, start_new_session=True, **options)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(ANSWER_SECONDS)
        self.sock = ours
        self.waiting: collections.deque[PendingHost] = collections.deque()
        self.answered = 0  # answers read (a zygote that ends before any is broken here)

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.proc.poll() is None

    def close(self) -> None:
        """End the zygote (the hosts it forked are this process's and live on)."""
        self.sock.close()
        if self.owner != os.getpid():
            return
        try:
            self.proc.wait(timeout=2)  # EOF on its socket ends it
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.owner = 0


_zygote: Zygote | None = None
_broken: str | None = None  # why this process's hosts are started by exec instead


def usable(sandbox: Sandbox) -> bool:
    """Whether this process's warm hosts are forked: in the full sandbox (a root worker with
    bubblewrap: the zygote makes the same namespaces), unless forking one failed here."""
    return sandbox.bwrap is not None and sandbox.jobs_root is not None and _broken is None


INIT_FAILED = 125  # a forked host's init could not make its namespace (runtime/sma_zygote.py)


def ended_early(proc: ForkedProcess) -> None:
    """A forked host ended before its job: when its init could not make its namespace (it
    said why on the host's stderr), this process starts its next hosts by exec instead of
    forking one that would fail the same way for every job."""
    global _broken
    if proc.returncode != INIT_FAILED or _broken is not None or proc.stderr is None:
        return
    os.set_blocking(proc.stderr.fileno(), False)
    try:
        said = (proc.stderr.read() or b"").decode(errors="replace").strip()
    except OSError:
        said = ""
    _broken = said or f"its init exited with code {INIT_FAILED}"
    log.warning("a forked warm host could not be made (%s): this worker process starts its "
                "warm hosts with bubblewrap and an interpreter instead", _broken)


class PendingHost:
    """A host asked of the zygote, its pipes made; `process()` once it is needed (the pool
    process does not wait for the fork between two jobs: a job takes the older host)."""

    def __init__(self, zygote: Asked, stderr_r: int, report_r: int,
                 init: Init | None = None) -> None:
        self.zygote = zygote
        self.stderr_r = stderr_r
        self.report_r = report_r
        self.init = init  # the host's init, which may take the next host
        self.outcome: int | ZygoteError | None = None

    def process(self) -> ForkedProcess:
        """The forked host; ZygoteError when the zygote could not fork it (its stderr pipe
        is then closed)."""
        global _broken
        self.zygote.settle(self)
        if isinstance(self.outcome, ZygoteError):
            os.close(self.stderr_r)
            os.close(self.report_r)
            if self.init is not None:
                if not isinstance(self.outcome, ZygoteGone):
                    log.warning("a warm host's init could not take the next host (%s): it "
                                "is let go", self.outcome)
                self.init.close()
            if not isinstance(self.outcome, ZygoteGone) and _broken is None \
                    and isinstance(self.zygote, Zygote):
                _broken = str(self.outcome)
                log.warning("a warm host could not be forked (%s): this worker process "
                            "starts its warm hosts with bubblewrap and an interpreter "
                            "instead", self.outcome)
            raise self.outcome
        if self.init is not None and not self.init.pid:
            self.init.started(self.outcome)
        return ForkedProcess(self.outcome, self.stderr_r, self.report_r, init=self.init)


def request_host(sandbox: Sandbox, resources: JobResources, workdir: Path,
                 env: dict[str, str], keep: tuple[str, ...], init: Init | None = None
                 ) -> tuple[PendingHost, int, str, int]:
    """A warm host asked of this process's zygote, or of `init`, the init of a host whose
    job ended cleanly, with `env` (what an exec'd host starts with), in `workdir`, with the
    job's uid and limits of `resources`: the pending host, the read end of its stdout pipe,
    its record channel's tag and the write end of its spec pipe (see warm.WarmHost).
    ZygoteGone when it could not be asked.

    A new init may take more hosts when the job has no cgroup of its own (a cgroup's
    usage and limits are one job's: such an init runs one host)."""
    zygote = init or _current(sandbox)
    control = None
    if init is None and resources.cgroup is None:
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    spec_r, spec_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    report_r, report_w = os.pipe()
    tag = new_tag()
    # as an exec'd host gets it from launch.spawn and Sandbox.command: the record channel
    # (descriptor 3, a second one of stdout), its limits, the user it becomes; PWD as
    # bubblewrap sets it
    env = {**env, "PWD": str(workdir), "SMA_RECORD_FD": "3", "SMA_RECORD_TAG": tag,
           "SMA_RLIMITS": rlimit_spec(resources.rlimits),
           "SMA_RUN_AS": f"{resources.uid}:{sandbox.gid}"}
    umask = os.umask(0o077)
    os.umask(umask)
    try:
        zygote.request(
            workdir=workdir, env=env, umask=0o002 if resources.held is not None else umask,
            passwd=resources.passwd(workdir),
            kept=kept_in_tmp(sandbox.jobs_root, [sandbox.python, str(sandbox.runtime_dir)],
                             env, keep),
            cgroup_procs=str(resources.cgroup.path / "cgroup.procs")
            if resources.cgroup is not None else None,
            spec_r=spec_r, stdout_w=stdout_w, stderr_w=stderr_w, report_w=report_w,
            control=theirs.fileno() if control is not None else None)
    except BaseException:
        for fd in (spec_w, stdout_r, stderr_r, report_r):
            os.close(fd)
        if control is not None:
            control.close()
        raise
    finally:
        for fd in (spec_r, stdout_w, stderr_w, report_w):
            os.close(fd)
        if control is not None:
            theirs.close()
    pending = PendingHost(zygote, stderr_r, report_r,
                          init or (Init(sandbox, control) if control is not None else None))
    zygote.waiting.append(pending)
    resources.forked = True
    return pending, stdout_r, tag, spec_w


def _current(sandbox: Sandbox) -> Zygote:
    """This pool process's zygote, started (again) when there is none alive."""
    global _zygote, _broken
    if _zygote is None or not _zygote.alive():
        if _zygote is not None and _zygote.owner == os.getpid():
            ended, code = _zygote, _zygote.proc.returncode
            _zygote = None
            _let_go(ended)
            if not ended.answered:  # it cannot start here: do not start one for every host
                _broken = (f"the zygote ended before it answered a request (exit code {code}; "
                           "its error is in the worker's log)")
                log.warning("%s: this worker process starts its warm hosts with bubblewrap "
                            "and an interpreter instead", _broken)
                raise ZygoteGone(_broken)
            log.warning("the warm hosts' zygote ended (exit code %s): a new one starts", code)
        _zygote = Zygote(sandbox)
    return _zygote


def _let_go(zygote: Zygote) -> None:
    """Read the answers a zygote sent before it ended or is ended: the hosts it forked are
    this process's to end (one it did not answer for ends by itself: see `_init`)."""
    if zygote.waiting and zygote.owner == os.getpid():
        zygote.settle(zygote.waiting[-1])
    zygote.close()


def release() -> None:
    """End this process's zygote (the worker shuts down)."""
    global _zygote
    if _zygote is not None:
        _let_go(_zygote)
        _zygote = None
