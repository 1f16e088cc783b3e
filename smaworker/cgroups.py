"""A cgroup v2 per job, where the worker may make one.

That is where this process sits in a cgroup v2 hierarchy whose cgroup offers the memory and
pids controllers and may be written: the cgroup systemd gives a service with Delegate=yes
(or a container's own cgroup namespace with a writable /sys/fs/cgroup). As cgroup v2's "no
internal processes" rule asks (and systemd's delegation notes describe), the processes of
that cgroup first move into a leaf, `sma-worker`, and memory and pids are enabled for its
children; every job then gets a cgroup `job-<worker pid>-<job id>` beside it, with
memory.max (memory.swap.max 0: the limit is not worked around by swapping), pids.max, and
the kernel's exact figures for the job detail: CPU time (cpu.stat) and peak memory
(memory.peak, Linux 5.19 and later).

The job's first process enters its cgroup between fork and exec (a preexec_fn: Python
cannot spawn into a cgroup, and moving a process after it started races with its first
fork), so nothing the job starts is outside. At the end cgroup.kill ends whatever is left
and the cgroup is removed; cgroups of worker processes that died go at the next start.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

_NEEDED = {"memory", "pids"}
_LEAF = "sma-worker"


def _own_cgroup() -> Path | None:
    """This process's cgroup v2 folder, None when it is in none."""
    try:
        with open("/proc/self/cgroup") as fh:
            relative = next((line.strip()[3:] for line in fh if line.startswith("0::")), None)
        with open("/proc/self/mountinfo") as fh:
            mounts = [line.split() for line in fh]
    except OSError:
        return None
    if relative is None:
        return None
    for fields in mounts:
        # mount id, parent, dev, root, mount point, options..., "-", fstype, source, ...
        fstype = fields[fields.index("-") + 1]
        if fstype == "cgroup2" and fields[3] == "/":
            return Path(fields[4]) / relative.lstrip("/")
    return None


def _read(path: Path) -> str:
    return path.read_text().strip()


def delegated_root() -> tuple[Path | None, str]:
    """The cgroup the jobs' cgroups go in (set up for them), or None and why not."""
    own = _own_cgroup()
    if own is None:
        return None, "this process is in no cgroup v2 hierarchy (cgroup v1 or hybrid host)"
    base = own.parent if own.name == _LEAF else own
    try:
        offered = set(_read(base / "cgroup.controllers").split())
        if not _NEEDED <= offered:
            return None, (f"the cgroup {base} offers no {' and '.join(sorted(_NEEDED - offered))}"
                          " controller (with systemd: Delegate=yes on the worker's service)")
        if not os.access(base / "cgroup.subtree_control", os.W_OK):
            return None, f"the cgroup {base} is not writable by this process"
        enabled = set(_read(base / "cgroup.subtree_control").split())
        if not _NEEDED <= enabled:
            # the host's root cgroup (which alone has no cgroup.type) may hold processes
            # and children at once: the host's processes are never moved out of it
            if (base / "cgroup.type").exists():
                leaf = base / _LEAF
                leaf.mkdir(exist_ok=True)
                for pid in _read(base / "cgroup.procs").split():
                    try:
                        (leaf / "cgroup.procs").write_text(pid)
                    except ProcessLookupError:
                        pass
            (base / "cgroup.subtree_control").write_text(
                " ".join(f"+{name}" for name in sorted(_NEEDED)))
        _remove_orphans(base)
    except OSError as exc:
        return None, f"the cgroup {base} cannot be set up for jobs: {exc}"
    return base, ""


def _remove_orphans(base: Path) -> None:
    """Remove the job cgroups of worker processes that are gone."""
    for path in base.glob("job-*-*"):
        owner = path.name.split("-")[1]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            JobCgroup.remove_path(path)


class JobCgroup:
    """One job's cgroup: made with its limits, entered by the job's first process."""

    def __init__(self, base: Path, job_hex: str, memory_mb: int | None,
                 max_processes: int | None) -> None:
        self.path = base / f"job-{os.getpid()}-{job_hex}"
        self.path.mkdir()
        try:
            if memory_mb:
                (self.path / "memory.max").write_text(str(memory_mb << 20))
                swap = self.path / "memory.swap.max"
                if swap.exists():
                    swap.write_text("0")
            if max_processes:
                (self.path / "pids.max").write_text(str(max_processes))
            self._procs = os.open(self.path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
        except BaseException:
            self.remove_path(self.path)
            raise

    def enter(self) -> None:
        """Move the calling process into the cgroup (the preexec_fn of the job's Popen)."""
        os.write(self._procs, b"0")

    def hits(self) -> list[str]:
        """The limits the job ran into: an OOM kill, a refused fork."""
        hits = []
        if _event(self.path / "memory.events", "oom_kill"):
            hits.append("max_memory_mb")
        if _event(self.path / "pids.events", "max"):
            hits.append("max_processes")
        return hits

    def usage(self) -> tuple[float | None, int | None]:
        """CPU seconds and peak memory (MB) of the whole job."""
        cpu = _event(self.path / "cpu.stat", "usage_usec")
        try:
            peak = int(_read(self.path / "memory.peak"))
        except (OSError, ValueError):
            peak = None
        return (cpu / 1e6 if cpu is not None else None,
                -(-peak // (1 << 20)) if peak is not None else None)

    def remove(self) -> None:
        os.close(self._procs)
        self.remove_path(self.path)

    @staticmethod
    def remove_path(path: Path) -> None:
        """End what is left in the cgroup and remove it (its processes may take a moment
        to be gone)."""
        try:
            (path / "cgroup.kill").write_text("1")
        except OSError:
            pass
        for _ in range(100):
            try:
                path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    break
                time.sleep(0.02)
        log.warning("the job cgroup %s could not be removed", path)


def _event(path: Path, key: str) -> int | None:
    try:
        with open(path) as fh:
            for line in fh:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return None
