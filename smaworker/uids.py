"""A uid of its own for every running job (as systemd's DynamicUser=).

A root worker gives each job a uid from SMA_JOB_UID_RANGE, with SMA_JOB_USER's group, for
as long as the job runs. What the kernel keys on the uid is then the job's alone: its
process count (RLIMIT_NPROC: a fork bomb starves only itself), who may signal or trace its
processes, and the files it leaves in shared places such as /tmp.

A uid is held with an flock on `<temp folder>/sma-uids/<uid>`: every worker process on the
host (whatever its worker, whatever its instance) sees the same files, and a process that
dies lets go of its uids with it. Uids some user or service of the host has (the passwd
database, systemd's dynamic users) are never handed out. Inside bubblewrap the job's
/etc/passwd names its uid as SMA_JOB_USER, so `whoami`, ssh and the like work; the end of
the job's PID namespace ends every process it started. Without bubblewrap, what a job left
running under its uid is killed before the uid is given to the next job.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SYSTEMD_DYNAMIC = Path("/run/systemd/dynamic-uid")


class NoFreeUid(RuntimeError):
    """Every uid of the range is taken by a running job."""


@dataclass
class JobUid:
    """A uid held for one job; `release()` gives it back."""

    uid: int
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # ends the flock
            self.fd = -1


class UidPool:
    """The uids of SMA_JOB_UID_RANGE, shared by every worker process of this host."""

    def __init__(self, folder: Path, uids: range, gid: int, setpriv: str | None,
                 sweep: bool) -> None:
        self.folder = folder
        self.uids = uids
        self.gid = gid
        self.setpriv = setpriv
        self.sweep = sweep  # no PID namespace ends a job's processes: kill them here
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
        # read once: a user added to the passwd database later in the range is a
        # misconfiguration the next start of the worker catches
        self.taken = {entry.pw_uid for entry in pwd.getpwall() if entry.pw_uid in uids}
        if len(self.taken) == len(uids):
            raise ValueError(f"every uid of {uids.start}-{uids.stop - 1} belongs to a user")
        self.next = (os.getpid() * 7919) % len(uids)  # processes start apart

    def claim(self) -> JobUid:
        """A uid no other running job of this host holds; NoFreeUid when there is none."""
        size = len(self.uids)
        for i in range(size):
            uid = self.uids[(self.next + i) % size]
            if uid in self.taken or (_SYSTEMD_DYNAMIC / str(uid)).exists():
                continue
            fd = os.open(self.folder / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.next = (self.next + i) % size  # this process keeps to one uid if it can
            held = JobUid(uid, fd)
            if self.sweep:
                self._kill_processes_of(uid)
            return held
        raise NoFreeUid(f"All {size} uids of SMA_JOB_UID_RANGE are held by running jobs; "
                        "widen the range or run fewer jobs at once on this host")

    def _kill_processes_of(self, uid: int) -> None:
        """End every process running as `uid` (left by an earlier job that escaped its
        process group): kill(-1) as that uid reaches exactly those."""
        try:
            # bash's own kill: procps' kill takes -1 for an option
            subprocess.run([self.setpriv, f"--reuid={uid}", f"--regid={self.gid}",
                            "--clear-groups", "--", "bash", "--noprofile", "--norc", "-c",
                            "kill -s KILL -1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            log.warning("could not end the processes left under uid %s", uid, exc_info=True)


def passwd_for(base: str, user: str, uid: int, gid: int, home: str) -> bytes:
    """/etc/passwd as the job sees it: SMA_JOB_USER's entry with the job's uid."""
    lines = [line for line in base.splitlines() if not line.startswith(f"{user}:")]
    lines.append(f"{user}:x:{uid}:{gid}:sma job:{home}:/usr/sbin/nologin")
    return ("\n".join(lines) + "\n").encode()
