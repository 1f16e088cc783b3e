"""Where a root worker puts its jobs' folders: a root-owned folder of its own instance.

The folder is named from the instance's data folder (SMA_DATA_DIR), so every worker process
of one instance shares it (the copies in shared/, the module cache) and two instances on
one host never meet there. It lives in the temporary folder, not in the data folder: the
job's user must reach its job folder, and a data folder is private (root's is 0700).

The uids a worker hands its jobs (smaworker/uids.py) are the host's, whatever the
instance: their locks sit in one folder for the whole host.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import stat
import tempfile
import threading
from pathlib import Path

from smacommon.errors import ConfigurationError


def jobs_root_for(data_dir: Path) -> Path:
    """The jobs root of the instance whose data folder is `data_dir` (not made here)."""
    key = str(Path(data_dir).expanduser().resolve()).encode()
    return Path(tempfile.gettempdir()) / f"sma-jobs-{hashlib.sha256(key).hexdigest()[:16]}"


def uid_locks_folder() -> Path:
    """The host's folder of job uid locks (root's, 0700), made if missing."""
    folder = Path(tempfile.gettempdir()) / "sma-uids"
    _owned_folder(folder, 0o700, "holds the locks of the uids jobs run as")
    return folder


def prepare(root: Path) -> Path:
    """Make `root` with run/ (the job folders, which nobody may list), shared/ (what every
    job may read) and gone/ (job folders being deleted, out of every job's reach);
    ConfigurationError when one is there but not root's own folder."""
    for path, mode in ((root, 0o711), (root / "run", 0o711), (root / "shared", 0o755),
                       (root / GONE, 0o700)):
        _owned_folder(path, mode, "holds the jobs' private folders")
    return root


GONE = "gone"
_doomed: queue.SimpleQueue[str] | None = None
_doomed_pid = 0
_doomed_lock = threading.Lock()


def remove_later(root: Path, folder: Path) -> None:
    """Remove a job's folder from `root`/run: moved at once into gone/ (root's, 0700: out of
    every job's reach, whatever uid comes next), deleted by a thread of this process, so the
    files a job left are not deleted on the way to its next job. Where the move fails, it
    is deleted here and now."""
    global _doomed, _doomed_pid
    target = root / GONE / folder.name
    try:
        os.rename(folder, target)
    except FileNotFoundError:
        return
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return
    with _doomed_lock:
        if _doomed is None or _doomed_pid != os.getpid():  # (again in a forked child)
            _doomed, _doomed_pid = queue.SimpleQueue(), os.getpid()
            threading.Thread(target=_delete_forever, args=(_doomed,), daemon=True,
                             name="sma-folder-removal").start()
        _doomed.put(str(target))


def _delete_forever(doomed: queue.SimpleQueue[str]) -> None:
    while True:  # a folder this process did not get to is removed at the next start
        shutil.rmtree(doomed.get(), ignore_errors=True)


def _owned_folder(path: Path, mode: int, holds: str) -> None:
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    st = os.lstat(path)  # a symlink, or another user's folder, planted in /tmp: refused
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise ConfigurationError(
            f"{path} must be a folder owned by root (it {holds}); remove it and start the "
            "worker again")
    os.chmod(path, mode)  # whatever it was, nobody else may write it (nor list run/)


def _started_at(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), None if there is none."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def remove_orphans(run: Path) -> int:
    """Remove job folders (and files) whose owning process is gone (killed with its job):
    what they hold (scripts, checkpoints, files a job wrote) must not outlive it. A folder
    of a process that runs is kept, unless that pid was reused by a process younger than it."""
    removed = 0
    try:
        entries = list(os.scandir(run))
    except OSError:
        return 0
    for entry in entries:
        owner = entry.name.split("-", 1)[0]
        if not owner.isdigit() or entry.is_symlink():
            continue
        started = _started_at(int(owner))
        try:
            made = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if started is not None and started <= made + 1:
            continue  # its process still runs
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)
        removed += 1
    return removed
