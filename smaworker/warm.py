"""The warm Python engine: a Python host made before its job, so a job does not wait for
bubblewrap and a fresh interpreter.

Each pool process keeps two warm hosts (Celery's prefork pool runs one job per process at a
time): a job takes the older one, the one started before the previous job, so even jobs
that come one right after another find their host done starting (a host takes about as long
to start as a cold job's process, 15-40 ms; one started only when the previous job ended
was still starting when the next job came). A warm host is what a cold Python job's process
is, started early: the same sandbox command (bubblewrap's PID namespace, the job user, a
uid of its own from the uid pool, its own /etc/passwd), its own private work folder, the
worker's default limits, its cgroup where there is one, its own process group, its stdout
pipe with the record channel and its stderr pipe. sma's host (runtime/sma_python_host.py
--warm) sets the limits, drops root, imports sma's helpers and the common standard modules,
then blocks on a pipe. A job hands it the script's path, its parameters and its own
environment variables (its id, its token) over that pipe; the host then runs it exactly as
a cold host runs its spec.

A root worker with bubblewrap does not start its hosts: its zygote forks them
(smaworker/zygote.py, runtime/sma_zygote.py: one Python process per pool process, started
by exec with a clean environment, sma's helpers and the common modules imported once),
and each fork makes the same namespaces and mounts the bwrap command line above makes,
takes its pipes, folder, limits and uid, and waits as an exec'd host does: about 9 ms of
CPU for a host instead of about 17 (bench/warm.py). Where the zygote cannot fork a host
(it said why), this pool process starts its hosts by exec again.

A host runs one job only, and is never reused: the host itself could not give a next job a
PID namespace, work folder and /tmp of its own, nor be sure nothing of an earlier job is
left in it. After the job, when its process, folder and uid are gone as a cold job's are,
the pool process makes the next host while it waits for its next message.

A forked host's init (B, process 1 of its namespace, root, which never runs a job's code
nor sees its token or parameters) may fork that next host itself (`after_job`): when the
job left no process running in the namespace (else the init ends, and what is left with
it), when the host had no cgroup of its own (a cgroup's usage and limits are one job's),
and the worker is not shutting down. The next host then gets a new folder, /tmp and
/etc/passwd (the last job's are unmounted before its end is reported, and removed), the
same uid (given back only when the init ends), the worker's default limits again, and its
own usage report. What that saves is a clone and an exit of the zygote's image for every
job, and the zygote's copy-on-write faults after each fork: about a third of a trivial
job's CPU (bench/RESULTS.md "2026-12-03, afternoon").

The cold path stays for what a warm host cannot be: runbooks with requirements (their own
environment's interpreter), other engines, runbooks whose limits are above the worker's
defaults (a process that dropped root cannot raise its limits; lowering them is fine), no
host ready or one that died, and SMA_WARM_PYTHON=false.

Without bubblewrap (a worker that is not root, or SMA_ALLOW_UNSANDBOXED) a warm host is,
like a cold job's process, no more than the job user's process in its own session and
folder: no PID namespace, the host's /tmp; what holds for a cold job there holds for it.
"""

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
from smaworker import shutdown, zygote
from smaworker.claim import ClaimedJob, ClaimedRunbook
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
                 reuse: tuple[zygote.Init, JobResources] | None = None) -> None:
        """`reuse`: the init of a host whose job ended cleanly, and that job's uid: the init
        forks this host in its namespace, in a new folder (see `after_job`)."""
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


# --- this pool process's hosts -------------------------------------------------------

HOSTS = 2  # kept ready per pool process, oldest first
_ready: list[WarmHost] = []


def cold_reason(settings: Settings, job: ClaimedJob, runbook: ClaimedRunbook) -> str | None:
    """Why the job runs cold, None when a warm host can run it."""
    if not settings.warm_python:
        return "SMA_WARM_PYTHON=false"
    if runbook.runbook_type != "python":
        return f"a {runbook.runbook_type} runbook"
    if job.requirements:
        return "its own environment"
    return None


def take(settings: Settings, job: ClaimedJob, runbook: ClaimedRunbook) -> WarmHost | None:
    """This process's oldest warm host for the job, None when it runs cold (hosts the job
    cannot use stay for the next jobs)."""
    if not _ready or cold_reason(settings, job, runbook) is not None:
        return None
    limits = JobLimits.for_runbook(runbook, settings)
    for host in list(_ready):
        if not host.alive():
            if host.proc is not None:  # (one never forked is said when it was not)
                log.warning("a warm Python host of this process ended before its job (exit "
                            "code %s): it is let go", host.proc.returncode)
                if isinstance(host.proc, ForkedProcess):
                    zygote.ended_early(host.proc)
            _ready.remove(host)
            host.discard()
            continue
        if host.fits(limits):
            _ready.remove(host)
            host.resources.limits = limits  # what the job runs with and its end is judged by
            host.resources.rlimits = limits.rlimits(in_cgroup=host.resources.cgroup is not None)
            return host
    return None


def after_job(host: WarmHost) -> None:
    """The job `host` ran has ended and been recorded: when its process's init may take
    another host, and the job left nothing running (else the init has ended), the init
    forks this process's next host in its namespace, with the same uid, in a new folder,
    with a new /tmp; the job's folder goes. Otherwise the host goes as an unused one does."""
    proc = host.handed
    if (isinstance(proc, ForkedProcess) and proc.init is not None and proc.cleans_up
            and proc.poll() is None and host.settings.warm_python
            and not shutdown.shutting_down() and len(_ready) < HOSTS):
        resources, host.resources = host.resources, None
        resources.limits = JobLimits.for_runbook(None, host.settings)
        resources.rlimits = resources.limits.rlimits(in_cgroup=False)
        try:
            # (on failure it ends itself: the init, its folder, the uid)
            _ready.append(WarmHost(host.sandbox, host.settings, reuse=(proc.init, resources)))
        except Exception as exc:  # noqa: BLE001 - a new host is forked instead
            log.debug("a warm host's init did not take the next host: %s", exc)
        else:
            host.handed = None  # its init lives on in the next host
            host.init = None
    host.discard()


def prepare(settings: Settings, sandbox: Sandbox) -> None:
    """Start this process's next warm hosts (up to HOSTS), unless they are turned off."""
    if not settings.warm_python or shutdown.shutting_down():
        return
    while len(_ready) < HOSTS:
        try:
            _ready.append(WarmHost(sandbox, settings))
        except Exception:  # jobs run cold meanwhile; the next job's end tries again
            log.warning("could not start a warm Python host: jobs run cold", exc_info=True)
            return


def release() -> None:
    """End this process's warm hosts and their zygote (the worker shuts down)."""
    while _ready:
        _ready.pop().discard()
    zygote.release()
