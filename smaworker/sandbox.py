"""Who a job's processes run as, and what they can see.

A worker started as root runs every job as the unprivileged SMA_JOB_USER (as SMA's workers
run runbooks under a service account), with no supplementary groups, in a private folder
(mode 0700) whose random name sits in a root-owned folder nobody can list, its instance's
own (smaworker/jobsroot.py). Where bubblewrap is installed, each job also gets its own PID
namespace with a fresh /proc: a job cannot see, signal or trace another job's processes, nor
read their environment (which holds their tokens) or learn their folders' names; when the
runbook ends, the kernel ends everything it left behind, even processes that left its
process group.

A worker started as any other user runs jobs as itself, in a private temporary folder.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smacommon.errors import ConfigurationError
from smacommon.process import tied_to_parent
from smacommon.settings import Settings
from smaworker import cafile
from smaworker.engines.base import RUNTIME_DIR
from smaworker.jobsroot import GONE, jobs_root_for, prepare, remove_later, remove_orphans

log = logging.getLogger(__name__)

CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SETPRIV = shutil.which("setpriv")
_BWRAP = shutil.which("bwrap")
PRIVATE_TMP = ".tmp"  # in a job's folder: its /tmp, inside bubblewrap


def accessible(path: str | Path, uid: int, gids: set[int], mode: int) -> bool:
    """Whether a process with `uid` and `gids` may use `path` in `mode` (os.R_OK, os.X_OK...),
    judged from permission bits along the path, as written and resolved."""
    path = Path(path)
    for candidate in {path.absolute(), path.resolve()}:
        parts = [candidate, *candidate.parents]
        for i, part in enumerate(parts):
            try:
                st = part.stat()
            except OSError:
                return False
            want = mode if i == 0 else os.X_OK
            if st.st_uid == uid:
                bits = (st.st_mode >> 6) & 7
            elif st.st_gid in gids:
                bits = (st.st_mode >> 3) & 7
            else:
                bits = st.st_mode & 7
            if bits & want != want:
                return False
    return True


@dataclass(frozen=True)
class Sandbox:
    """How this worker starts job processes."""

    user: str | None          # None: jobs run as the worker's own user
    uid: int | None
    gid: int | None
    bwrap: str | None         # bubblewrap, for a PID namespace per job
    jobs_root: Path | None    # root-owned, the instance's own (smaworker/jobsroot.py): run/
                              # holds the job folders, shared/ copies of files jobs must
                              # read (None: jobs use the temp folder)
    runtime_dir: Path         # sma's runbook-side helpers, readable by the job's user
    python: str               # the interpreter of Python runbooks and helpers

    def make_workdir(self, job_hex: str, uid: int | None = None) -> Path:
        """A new private folder for one job, owned by the user it runs as (`uid`: the job's
        own, else SMA_JOB_USER's)."""
        if self.jobs_root is None:
            return Path(tempfile.mkdtemp(prefix=f"sma-job-{job_hex[:8]}-"))
        # 128 random bits: the name cannot be guessed, and the parent cannot be listed; the
        # process that owns it leads the name, so a worker that died can be cleaned up after
        path = self.jobs_root / "run" / f"{os.getpid()}-{job_hex[:8]}-{secrets.token_hex(16)}"
        os.mkdir(path, 0o700)
        os.chown(path, self.uid if uid is None else uid, self.gid)
        if self.bwrap is not None:
            os.mkdir(path / PRIVATE_TMP)
            os.chmod(path / PRIVATE_TMP, 0o1777)  # its /tmp: see `command`
        return path

    def remove_workdir(self, path: Path) -> None:
        """Remove a job's folder (smaworker/jobsroot.py `remove_later`: out of reach at
        once, deleted off the job's path)."""
        if self.jobs_root is None:
            shutil.rmtree(path, ignore_errors=True)
        else:
            remove_later(self.jobs_root, Path(path))

    @functools.lru_cache(maxsize=8)  # noqa: B019 - a sandbox lives as long as its process
    def readable_copy(self, path: str) -> str:
        """The CA file `path` as the job's user may read it: itself, or a copy of its
        certificates only (see smaworker.cafile); worked out once per process, not per job."""
        if self.uid is None:
            return path
        return cafile.for_jobs(path, self.jobs_root / "shared",
                               accessible(path, self.uid, {self.gid}, os.R_OK))

    def env(self, base: dict[str, str]) -> dict[str, str]:
        if self.user is None:
            return base
        return {**base, "USER": self.user, "LOGNAME": self.user}

    def command(self, argv: list[str], workdir: Path, env: dict[str, str], *,
                drops_itself: bool = False, uid: int | None = None,
                passwd_fd: int | None = None, keep: tuple[str, ...] = ()
                ) -> tuple[list[str], dict[str, Any], dict[str, str]]:
        """argv, Popen options and environment that run `argv` as the job's user, in its
        namespaces, and end it when the worker dies. `drops_itself`: the program gives up
        root itself, first thing, when SMA_RUN_AS says to (sma's Python host does: one exec
        of setpriv less for every Python job). `uid`: the job's own uid (else
        SMA_JOB_USER's); `passwd_fd`: the job's /etc/passwd, mounted over the real one;
        `keep`: more paths in /tmp the job must reach (besides those its argv and
        environment name)."""
        if self.uid is None:
            return (*tied_to_parent(argv), env)
        uid = self.uid if uid is None else uid
        if self.bwrap is not None and drops_itself:
            # bwrap --die-with-parent ends it with the worker (setpriv's --pdeathsig)
            env = {**env, "SMA_RUN_AS": f"{uid}:{self.gid}"}
        else:
            # setpriv changes the ids first and sets the parent-death signal after (a change
            # of ids clears it), so the runbook still dies with the process above it
            argv = [_SETPRIV, f"--reuid={uid}", f"--regid={self.gid}", "--clear-groups",
                    "--pdeathsig=KILL", "--", *argv]
        if self.bwrap is None:
            return (*tied_to_parent(argv), env)
        # bwrap's own init is process 1 of the namespace and reaps orphans. With
        # --new-session, init and the runbook form a process group without the outer bwrap
        # (a SIGTERM to it would end the namespace at once). The job's /tmp is a fresh
        # folder of its own (in its work folder, on disk as /tmp is), with what it must
        # reach there bound back; an empty folder mounted over run/, with the job's own
        # folder bound back, hides every other job's folder.
        run = str(self.jobs_root / "run")
        passwd = [] if passwd_fd is None else [
            "--perms", "0644", "--ro-bind-data", str(passwd_fd), "/etc/passwd"]
        kept = [arg for path in kept_in_tmp(self.jobs_root, argv, env, keep)
                for arg in ("--bind", path, path)]
        return [self.bwrap, "--dev-bind", "/", "/", "--proc", "/proc",
                "--bind", str(workdir / PRIVATE_TMP), "/tmp", *kept, "--tmpfs", run,
                "--bind", str(workdir), str(workdir), *passwd, "--unshare-pid",
                "--die-with-parent", "--new-session", "--", *argv], {}, env

    def signal(self, proc: subprocess.Popen, sig: int) -> None:
        """Signal the job's processes: SIGKILL ends all of them; another signal goes to the
        runbook's process group, so the runbook can handle it."""
        if getattr(proc, "cleans_up", False):
            return  # a forked host's init that ended its host: it ends what is left itself
        target = proc.pid
        # a host the zygote forked is its namespace's init and leads the job's group itself
        # (smaworker/zygote.py)
        if self.bwrap is not None and sig != signal.SIGKILL \
                and not getattr(proc, "leads_group", False):
            # the group of bwrap's init (process 1 inside, which ignores it) and the runbook
            target = next(iter(_children(proc.pid)), target)
        try:
            os.killpg(target, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def exit_status(self, code: int | None) -> int | None:
        """The runbook's exit status as Popen gives it (negative: killed by that signal)."""
        if self.bwrap is not None and code is not None and 128 < code <= 128 + 64:
            return 128 - code  # bwrap reports a death by signal N as 128 + N
        return code


def kept_in_tmp(jobs_root: Path, argv: list[str], env: dict[str, str],
                 keep: tuple[str, ...]) -> list[str]:
    """What a job must still reach in the host's /tmp under its own: the jobs root (shared
    copies, its folder), and the folders in /tmp of the paths its argv and environment name
    (the interpreter, sma's runtime, its own environment with the package cache it links
    to, the CA file), each whole. (Strings, not paths: every warm host asks.)"""
    named = [str(jobs_root), *(p for p in (*argv, *keep) if p.startswith("/tmp/"))]
    for value in env.values():
        if "/tmp/" in value:
            named += [p for p in value.split(os.pathsep) if p.startswith("/tmp/")]
    tops = set()
    for path in named:
        parts = [part for part in path.split("/") if part and part != "."]
        if path.startswith("/") and len(parts) > 1 and parts[0] == "tmp" \
                and parts[1] != "..":
            tops.add(f"/tmp/{parts[1]}")
    return sorted(top for top in tops if os.path.exists(top))


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except (OSError, ValueError):
        return []


def _bwrap_works(bwrap: str) -> bool:
    try:
        return subprocess.run([bwrap, "--dev-bind", "/", "/", "--proc", "/proc",
                               "--unshare-pid", "--die-with-parent", "--", "true"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _shared_runtime(root: Path, uid: int, gids: set[int]) -> Path:
    """RUNTIME_DIR where the job's user can read it, else a copy of it in `root`/shared."""
    if accessible(RUNTIME_DIR, uid, gids, os.R_OK | os.X_OK):
        return RUNTIME_DIR
    digest = hashlib.sha256()
    for path in sorted(RUNTIME_DIR.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(RUNTIME_DIR)).encode() + path.read_bytes())
    target = root / "shared" / f"runtime-{digest.hexdigest()[:16]}"
    if not target.is_dir():
        staging = Path(tempfile.mkdtemp(dir=root / "shared", prefix=".runtime-"))
        shutil.copytree(RUNTIME_DIR, staging / "runtime",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for path in [staging / "runtime", *(staging / "runtime").rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        try:
            os.rename(staging / "runtime", target)
        except OSError:  # another worker on this machine was quicker
            pass
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _python_for(uid: int, gids: set[int], configured: str) -> str:
    if configured:
        if not accessible(configured, uid, gids, os.X_OK):
            raise ConfigurationError(
                f"SMA_PYTHON: {configured} cannot be run by the job user (uid {uid}); "
                "choose an interpreter outside private folders such as /root")
        return configured
    for candidate in (sys.executable, shutil.which("python3", path=CLEAN_PATH)):
        if candidate and accessible(candidate, uid, gids, os.X_OK):
            return candidate
    raise ConfigurationError(
        f"No Python interpreter the job user (uid {uid}) can run: {sys.executable} is in a "
        "private folder and there is no python3 on the system PATH; set SMA_PYTHON")


def build_sandbox(settings: Settings) -> Sandbox:
    """The sandbox the settings and this process's privileges call for; a root worker that
    cannot isolate its jobs is a ConfigurationError unless SMA_ALLOW_UNSANDBOXED says yes."""
    if os.geteuid() != 0:
        # a developer's worker: jobs have its rights (its files, sma's data folder), and
        # nothing isolates one job from another
        log.warning("the worker does not run as root: jobs run as %s, with its rights, and "
                    "can read each other's environment and files; start it as root (with "
                    "bubblewrap) to run each job as SMA_JOB_USER in its own namespace",
                    pwd.getpwuid(os.geteuid()).pw_name)
        return _unsandboxed(settings)
    if not settings.job_user:
        _refuse_unsandboxed(settings, "SMA_JOB_USER is empty, so jobs would run as root with "
                                      "the worker's rights")
        log.warning("SMA_JOB_USER is empty: jobs run as root, with the worker's rights "
                    "(SMA_ALLOW_UNSANDBOXED=true)")
        return _unsandboxed(settings)
    try:
        entry = pwd.getpwnam(settings.job_user)
    except KeyError:
        raise ConfigurationError(
            f"SMA_JOB_USER: there is no user {settings.job_user!r} on this machine; create "
            f"it (useradd --system --no-create-home --shell /usr/sbin/nologin "
            f"{settings.job_user}) or set SMA_JOB_USER to another unprivileged user") from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise ConfigurationError(f"SMA_JOB_USER: {settings.job_user!r} is root or in group "
                                 "root; jobs must run as an unprivileged user")
    if _SETPRIV is None:
        raise ConfigurationError("setpriv (util-linux) is needed to run jobs as SMA_JOB_USER")
    uid, gid = entry.pw_uid, entry.pw_gid
    gids = {gid}
    # with a uid per job (smaworker/uids.py) the job owns nothing outside its folder: judge
    # what it may read as a uid of that range would
    probe = settings.job_uids[0] if settings.job_uids else uid
    root = prepare(jobs_root_for(settings.data_dir))
    removed = remove_orphans(root / "run")
    remove_orphans(root / "shared")  # CA copies of workers that died
    remove_orphans(root / GONE)  # folders whose removal a worker that ended left undone
    cafile.remove_keyed_copies(root / "shared")
    if removed:
        log.info("removed %d job folder(s) left by worker processes that died", removed)
    bwrap = _BWRAP if _BWRAP and _bwrap_works(_BWRAP) else None
    if bwrap is None:
        problem = (f"bubblewrap ({_BWRAP}) cannot make namespaces here (in a container, "
                   "give the worker CAP_SYS_ADMIN without seccomp and AppArmor profiles)"
                   if _BWRAP else "bubblewrap (bwrap) is not installed: install the "
                   "bubblewrap package (apt-get install bubblewrap)")
        _refuse_unsandboxed(settings, problem)
        log.warning("%s; jobs run as %s but can see each other's processes, environment "
                    "and tokens (SMA_ALLOW_UNSANDBOXED=true)", problem, settings.job_user)
    return Sandbox(settings.job_user, uid, gid, bwrap, root,
                   _shared_runtime(root, probe, gids), _python_for(probe, gids, settings.python))


def _unsandboxed(settings: Settings) -> Sandbox:
    return Sandbox(None, None, None, None, None, RUNTIME_DIR, settings.python or sys.executable)


def _refuse_unsandboxed(settings: Settings, problem: str) -> None:
    if not settings.allow_unsandboxed:
        raise ConfigurationError(
            f"{problem}. A root worker runs jobs only in a sandbox, where one job cannot read "
            "another's environment, tokens, memory or files, nor leave processes behind; "
            "set SMA_ALLOW_UNSANDBOXED=true to run them without it.")


_current: Sandbox | None = None


def current_sandbox(settings: Settings) -> Sandbox:
    """This process's sandbox, built once."""
    global _current
    if _current is None:
        _current = build_sandbox(settings)
    return _current
