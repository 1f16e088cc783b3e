"""CPU time of a stack's long-lived processes by role, read from /proc (Linux), so a
benchmark can say where the CPU of a job goes: the web service, the Celery consumer (the
worker's main process), its pool processes, beat. A job's own runbook process is not in
these figures (it is a child that comes and goes)."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system seconds) of `pid`, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                parents.setdefault(stat[0], []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def _is_python(pid: int) -> bool:
    try:
        return b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stack_roles(procs: dict[str, int]) -> dict[str, list[int]]:
    """The Python processes under each of a stack's processes (name -> pid), by role: the
    worker's are split into `worker_consumer` (the main process) and `worker_pool`."""
    roles: dict[str, list[int]] = {}
    for name, root in procs.items():
        pids = [pid for pid in _descendants(root) if _is_python(pid)]
        if name == "worker":
            parent = {pid: (_stat(pid) or (0, 0.0))[0] for pid in pids}
            main = [pid for pid in pids if parent[pid] not in pids]
            roles["worker_consumer"] = main
            roles["worker_pool"] = [pid for pid in pids if pid not in main]
        else:
            roles[name] = pids
    return roles


def cpu_seconds(roles: dict[str, list[int]]) -> dict[str, float]:
    """User+system seconds each role's processes have used so far."""
    return {role: sum((_stat(pid) or (0, 0.0))[1] for pid in pids)
            for role, pids in roles.items()}
