"""One warm Python host, from its start until its job ended or it was let go (what
smaworker/warm.py keeps ready, takes for a job and lets go): started by exec (bubblewrap and
sma's host with `--warm`), or forked by this pool process's zygote or by the init of a host
whose job ended cleanly (smaworker/zygote.py); handed its job over its spec pipe."""

from __future__ import annotations

import functools
import logging
import marshal
import os
import secrets
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from smacommon.scripts.python import calls_main
from smacommon.settings import Settings
from smaworker import zygote
from smaworker.asked import Init
from smaworker.engines import get_engine
from smaworker.engines.base import ordered
from smaworker.forked import ForkedProcess
from smaworker.launch import host_env, spawn
from smaworker.limits import JobLimits, rlimit_spec
from smaworker.resources import JobResources
from smaworker.sandbox import Sandbox

log = logging.getLogger(__name__)

_HAND_OFF_SECONDS = 5.0  # a host that does not take its job by then is discarded


class WarmHost:
    """One pre-started Python host, from its start until its job ended or it was let go."""

    def __init__(self, sandbox: Sandbox, settings: Settings,
                 reuse: tuple[Init, JobResources] | None = None) -> None:
        """`reuse`: the init of a host whose job ended cleanly, and that job's uid: the init
        forks this host in its namespace, in a new folder (see `warm.after_job`)."""
        self.sandbox = sandbox
        self.settings = settings
        self.init = reuse[0] if reuse else None
        self.resources = reuse[1] if reuse else JobResources(
            sandbox, settings, None, "warm" + secrets.token_hex(12))
        self.workdir: Path | None = None
        self.handed: ForkedProcess | subprocess.Popen | None = None  # its job's process
        self.spec_w: int | None = None
        self.stdout_r: int | None = None
        self.proc: subprocess.Popen | ForkedProcess | None = None
        self.pending: zygote.PendingHost | None = None  # asked of the zygote, not settled
        try:
            self._start()
        except BaseException:
            self.discard()
            raise

    def _start(self) -> None:
        engine = get_engine("python")
        self.workdir = self.sandbox.make_workdir(secrets.token_hex(4), uid=self.resources.uid)
        env = {**host_env(self.sandbox, self.workdir), "PYTHONUTF8": "1"}
        ca_file = self.settings.api_ca_file  # its jobs' SMA_API_CA_FILE, reachable
        keep = (self.sandbox.readable_copy(ca_file),) if ca_file else ()
        if self.init is not None:  # ZygoteGone: it ended (its job left something running)
            self.pending, self.stdout_r, self.tag, self.spec_w = zygote.request_host(
                self.sandbox, self.resources, self.workdir, env, keep, init=self.init)
            return
        if zygote.usable(self.sandbox):
            try:
                self.pending, self.stdout_r, self.tag, self.spec_w = zygote.request_host(
                    self.sandbox, self.resources, self.workdir, env, keep)
                return
            except zygote.ZygoteGone as exc:  # this host starts by exec; a new zygote next
                log.warning("the warm hosts' zygote could not be asked for a host (%s)", exc)
        spec_r, self.spec_w = os.pipe()
        try:
            argv = [self.sandbox.python, "-I", "-u",
                    str(self.sandbox.runtime_dir / "sma_python_host.py"), "--warm", str(spec_r)]
            self.proc, self.stdout_r, self.tag = spawn(
                engine, argv, env, self.workdir, self.sandbox, self.resources,
                drops_itself=True, pass_fds=(spec_r,), keep=keep)
        finally:
            os.close(spec_r)

    def alive(self) -> bool:
        self._settle()
        if self.proc is None or self.proc.poll() is not None:
            return False
        # an init that may take another host outlives its host: has it reported its end?
        report = getattr(self.proc, "report_fd", None)
        return report is None or not select.select([report], [], [], 0)[0]

    def _settle(self) -> None:
        """The forked host's process, once the zygote answered (None: it could not fork)."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            try:
                self.proc = pending.process()
            except zygote.ZygoteGone as exc:
                log.warning("a warm host was not forked (%s): it is let go", exc)
            except zygote.ZygoteError:  # said there: this host is let go
                pass

    def fits(self, limits: JobLimits) -> bool:
        """Whether a job with `limits` can run here: the host can lower its limits, never
        raise them, a cgroup's limits are the host's own, and its CPU limit must be the
        host's (the worker's default)."""
        if self.resources.cgroup is not None and (
                limits.max_memory_mb != self.resources.limits.max_memory_mb
                or limits.max_processes != self.resources.limits.max_processes):
            return False
        wanted = limits.rlimits(in_cgroup=self.resources.cgroup is not None)
        if wanted.get("cpu") != self.resources.rlimits.get("cpu"):
            # RLIMIT_CPU counts the host's own start and imports: a CPU limit of the job's
            # own, set at its hand-off, would leave it less than it asked for
            return False
        for name, (soft, hard) in self.resources.rlimits.items():
            if name not in wanted or wanted[name][0] > soft or wanted[name][1] > hard:
                return False
        return True

    def hand_off(self, script: Path, parameters: dict[str, Any],
                 declared: list[dict[str, Any]], arguments: list[str], env: dict[str, str]
                 ) -> tuple[subprocess.Popen, int, str] | None:
        """Give the host its job; its process, stdout pipe and record tag as
        `launch.start_process` gives them, None when the host could not take it (it died,
        its pipe broke: ended, the job runs cold in its folder, with its uid)."""
        has_main = _calls_main(script.read_text(encoding="utf-8"))
        spec = marshal.dumps({
            "script": str(script), "parameters": ordered(parameters, declared),
            "has_main": has_main, "arguments": list(arguments),
            "env": {**env, "SMA_RLIMITS": rlimit_spec(self.resources.rlimits)}}, 4)
        if not self.alive() or not _write_all(self.spec_w, spec):
            log.warning("a warm Python host was gone at its job's hand-off: the job runs cold")
            self._end_process()
            self.proc = None
            return None
        os.close(self.spec_w)
        handed = self.proc, self.stdout_r, self.tag
        self.handed = self.proc
        # the job's now: the runner supervises, ends and reaps the process, closes the pipe
        self.spec_w = self.stdout_r = self.proc = None
        return handed

    def _end_process(self) -> None:
        self._settle()
        if self.spec_w is not None:
            os.close(self.spec_w)
            self.spec_w = None
        if self.stdout_r is not None:
            os.close(self.stdout_r)
            self.stdout_r = None
        if self.proc is not None:
            _end(self.sandbox, self.proc)

    def discard(self) -> None:
        """End the host (unused, or its job ended): its process, folder, uid and cgroup go;
        an init its job's process left alive (one that may take another host) too."""
        self._settle()
        init = self.init or getattr(self.proc, "init", None) or getattr(self.handed, "init",
                                                                        None)
        self._end_process()
        self.proc = self.handed = None
        if init is not None:
            init.end()
        if self.workdir is not None:
            self.sandbox.remove_workdir(self.workdir)
            self.workdir = None
        if self.resources is not None:
            self.resources.release()
            self.resources = None


def _end(sandbox: Sandbox, proc: subprocess.Popen | ForkedProcess) -> None:
    """End a host's process and reap it."""
    sandbox.signal(proc, signal.SIGKILL)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log.error("a warm Python host (pid %s) did not end", proc.pid)
    if proc.stderr is not None:
        proc.stderr.close()


@functools.lru_cache(maxsize=64)
def _calls_main_cached(content: str) -> bool:
    return calls_main(content)


def _calls_main(content: str) -> bool:
    """calls_main, parsed once per script a pool process runs again and again (a job's
    runbook is usually one it ran before); a large one is parsed each time."""
    return _calls_main_cached(content) if len(content) <= 65536 else calls_main(content)


def _write_all(fd: int, data: bytes) -> bool:
    """Write `data` to the host's pipe within _HAND_OFF_SECONDS; False when it broke."""
    deadline = time.monotonic() + _HAND_OFF_SECONDS
    view = memoryview(data)
    os.set_blocking(fd, False)
    try:
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([], [fd], [], left)[1]:
                    return False
    except OSError:  # BrokenPipeError: the host ended
        return False
    return True
