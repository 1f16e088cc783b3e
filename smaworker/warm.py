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
/etc/passwd (the last job's are unmounted, then removed: the init says it is free), the
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

import logging

from smacommon.settings import Settings
from smaworker import shutdown, zygote
from smaworker.claim import ClaimedJob, ClaimedRunbook
from smaworker.forked import ForkedProcess
from smaworker.limits import JobLimits
from smaworker.sandbox import Sandbox
from smaworker.warmhost import WarmHost

log = logging.getLogger(__name__)

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
            and not shutdown.shutting_down() and len(_ready) < HOSTS
            and proc.init.free()):  # (else it ends, and the host goes as an unused one)
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
