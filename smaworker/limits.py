"""Per-job resource limits: what a job may use, how the limits reach its processes, and
which limit, if any, ended it.

A runbook's own limit (`max_memory_mb`, `max_processes`, `max_open_files`,
`max_cpu_seconds`, `max_file_mb`) wins; null takes the worker's default (SMA_JOB_MEMORY_MB,
SMA_JOB_MAX_PROCESSES, SMA_JOB_MAX_OPEN_FILES, SMA_JOB_CPU_SECONDS, SMA_JOB_MAX_FILE_MB;
0 there: no limit).

Where the worker may make a cgroup v2 per job (smaworker/cgroups.py), memory and processes
are limits of the job as a whole. Elsewhere every limit is a setrlimit limit of each of the
job's processes, set inside the job before the runbook runs and at no extra exec: sma's
Python host sets them itself, Bash's BASH_ENV helper with `ulimit`, and other engines start
through util-linux `prlimit`. Memory is RLIMIT_DATA: unlike RLIMIT_AS it does not count
address space only reserved, which .NET, Java and Go reserve by the gigabyte. Processes are
RLIMIT_NPROC, which counts every process of the job's uid: it is a limit per job with per-job
uids (smaworker/uids.py), else one shared by all jobs of SMA_JOB_USER on the host.
"""

from __future__ import annotations

import resource
import shutil
import signal
from dataclasses import dataclass
from typing import Any

from smacommon.limits import RUNBOOK_LIMITS
from smacommon.settings import Settings

LIMITS = tuple(RUNBOOK_LIMITS)

_PRLIMIT = shutil.which("prlimit")
_MB = 1 << 20
_CPU_GRACE = 5  # seconds between SIGXCPU (which a runbook may catch) and SIGKILL

# What a process that ran into a limit says on stderr (libc's strerror and strsignal texts,
# jobs run with LANG=C.UTF-8), most telling first. Only the wording of the reason of a job
# that failed depends on it, never its status.
_SIGNS = {
    "max_memory_mb": ("MemoryError", "Cannot allocate memory", "cannot allocate",
                      "out of memory", "Out of memory", "bad_alloc", "OutOfMemoryException"),
    "max_processes": ("fork: Resource temporarily unavailable", "fork: retry",
                      "Cannot fork", "can't start new thread", "BlockingIOError: [Errno 11]"),
    "max_open_files": ("Too many open files",),
    "max_cpu_seconds": ("CPU time limit exceeded",),
    "max_file_mb": ("File size limit exceeded", "File too large"),
}


@dataclass(frozen=True)
class JobLimits:
    """The limits one job runs with (None: no limit)."""

    max_memory_mb: int | None = None
    max_processes: int | None = None
    max_open_files: int | None = None
    max_cpu_seconds: int | None = None
    max_file_mb: int | None = None

    @classmethod
    def for_runbook(cls, runbook: Any, settings: Settings) -> JobLimits:
        """The runbook's own limits, else the worker's defaults."""
        defaults = {"max_memory_mb": settings.job_memory_mb,
                    "max_processes": settings.job_max_processes,
                    "max_open_files": settings.job_max_open_files,
                    "max_cpu_seconds": settings.job_cpu_seconds,
                    "max_file_mb": settings.job_max_file_mb}
        chosen = {}
        for name, default in defaults.items():
            value = getattr(runbook, name, None)
            chosen[name] = value if value is not None else (default or None)
        return cls(**chosen)

    def rlimits(self, in_cgroup: bool) -> dict[str, tuple[int, int]]:
        """setrlimit limits (resource name -> soft, hard; sizes in bytes). A cgroup holds
        memory and processes for the whole job; core dumps (a runbook's memory, with its
        secrets) are never written."""
        wanted = {"core": (0, 0)}
        if self.max_memory_mb and not in_cgroup:
            wanted["data"] = (self.max_memory_mb * _MB,) * 2
        if self.max_processes and not in_cgroup:
            wanted["nproc"] = (self.max_processes,) * 2
        if self.max_open_files:
            wanted["nofile"] = (self.max_open_files,) * 2
        if self.max_cpu_seconds:
            wanted["cpu"] = (self.max_cpu_seconds, self.max_cpu_seconds + _CPU_GRACE)
        if self.max_file_mb:
            wanted["fsize"] = (self.max_file_mb * _MB,) * 2
        # never above what this process has: a job (not root) could not raise it
        for name, (soft, hard) in wanted.items():
            ceiling = resource.getrlimit(getattr(resource, f"RLIMIT_{name.upper()}"))[1]
            if ceiling != resource.RLIM_INFINITY:
                wanted[name] = (min(soft, ceiling), min(hard, ceiling))
        return wanted

    def value(self, name: str) -> int | None:
        return getattr(self, name)

    def describe(self, name: str) -> str:
        """'its memory limit of 256 MB (max_memory_mb; default SMA_JOB_MEMORY_MB)'."""
        limit = RUNBOOK_LIMITS[name]
        return (f"its {limit.label} of {self.value(name)} {limit.unit} ({name}; "
                f"default {limit.setting})")


def rlimit_spec(rlimits: dict[str, tuple[int, int]]) -> str:
    """SMA_RLIMITS for the job's runtime: 'name=soft:hard ...', sizes in KiB as `ulimit`
    counts them (core, data, fsize)."""
    parts = []
    for name, (soft, hard) in rlimits.items():
        if name in ("core", "data", "fsize"):
            soft, hard = soft // 1024, hard // 1024
        parts.append(f"{name}={soft}:{hard}")
    return " ".join(parts)


def prlimit_argv(rlimits: dict[str, tuple[int, int]], argv: list[str]) -> list[str]:
    """`argv` started through prlimit with `rlimits` (for engines whose runtime cannot set
    them itself)."""
    if _PRLIMIT is None:
        raise RuntimeError("prlimit (util-linux) is needed to apply the job's limits to "
                           "this kind of runbook; install util-linux")
    return [_PRLIMIT, *(f"--{name}={soft}:{hard}" for name, (soft, hard) in rlimits.items()),
            "--", *argv]


def limit_reached(limits: JobLimits, exit_code: int | None, error_tail: list[str],
                  cpu_seconds: float | None, cgroup_hits: list[str]) -> str | None:
    """The limit that most likely ended a job that failed, None when none did: the
    cgroup's own count, the signal the kernel sends for a limit, else what the job's last
    error lines say."""
    for name in cgroup_hits:
        if limits.value(name):
            return name
    if limits.max_cpu_seconds and exit_code is not None and (
            exit_code == -signal.SIGXCPU or (exit_code == -signal.SIGKILL and cpu_seconds
                                             and cpu_seconds >= limits.max_cpu_seconds)):
        return "max_cpu_seconds"
    if limits.max_file_mb and exit_code == -signal.SIGXFSZ:
        return "max_file_mb"
    for line in reversed(error_tail):
        for name, signs in _SIGNS.items():
            if limits.value(name) and any(sign in line for sign in signs):
                return name
    return None


def limit_reason(limits: JobLimits, name: str, how: str) -> str:
    """'The runbook exited with code 1 after it reached its memory limit of ...'."""
    return f"{how.rstrip('.')} after it reached {limits.describe(name)}."
