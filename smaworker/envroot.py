"""Where a worker keeps runbook environments (a folder the job user can reach, every folder
above it traversable, which the worker alone may write), and the Python they are for."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

from smacommon.errors import ConfigurationError
from smacommon.settings import Settings
from smaworker.sandbox import Sandbox, accessible

log = logging.getLogger(__name__)

# a root worker's environments when its data folder is private (root's own, 0700)
FALLBACK_ROOT = Path("/var/cache/sma/envs")


def _blocking(path: Path, uid: int, gids: set[int]) -> Path | None:
    """The first folder on the way to `path` (as far as it exists) the job user cannot
    enter, None when there is none."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    for folder in (*reversed(existing.parents), existing):
        if not accessible(folder, uid, gids, os.X_OK):
            return folder
    if existing == path and not accessible(path, uid, gids, os.R_OK | os.X_OK):
        return path
    return None


def _check_owned(path: Path) -> None:
    """An existing root folder must be the worker's, and nobody else's to write: a job that
    could plant a folder there would run other jobs' code."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise ConfigurationError(
            f"The runbook environments folder {path} must be a folder owned by the worker's "
            f"user and writable by it alone (it is {oct(st.st_mode & 0o777)}, owner uid "
            f"{st.st_uid}); fix it, remove it or set SMA_ENV_DIR to another folder")


def job_reader(settings: Settings, sandbox: Sandbox) -> tuple[int, set[int]] | None:
    """The uid and groups whose rights a job has, as smaworker.sandbox judges them (a uid
    of SMA_JOB_UID_RANGE); None when jobs run as the worker's own user."""
    if sandbox.uid is None:
        return None
    return (settings.job_uids[0] if settings.job_uids else sandbox.uid), {sandbox.gid}


def environment_root(settings: Settings, sandbox: Sandbox) -> Path:
    """The folder of this worker's runbook environments (not made yet: the first build
    makes it); ConfigurationError when SMA_ENV_DIR is one the job user cannot reach."""
    configured = Path(settings.env_dir).absolute() if settings.env_dir else None
    default = (settings.data_dir / "envs").absolute()
    reader = job_reader(settings, sandbox)
    if reader is None:  # jobs run as the worker's own user: any folder of it will do
        root = configured or default
        _check_owned(root)
        return root
    uid, gids = reader
    if configured is not None:
        blocked = _blocking(configured, uid, gids)
        if blocked is not None:
            raise ConfigurationError(
                f"SMA_ENV_DIR: the job user cannot reach {configured}: {blocked} is closed to "
                f"it (mode {oct(blocked.stat().st_mode & 0o777)}); choose a folder outside "
                f"private folders such as /root, e.g. {FALLBACK_ROOT}")
        _check_owned(configured)
        return configured
    if _blocking(default, uid, gids) is None:
        _check_owned(default)
        return default
    blocked = _blocking(FALLBACK_ROOT, uid, gids)
    if blocked is not None:
        raise ConfigurationError(
            f"Neither {default} nor {FALLBACK_ROOT} can be reached by the job user ({blocked} "
            "is closed to it); set SMA_ENV_DIR to a folder it can reach")
    _check_owned(FALLBACK_ROOT)
    log.info("runbook environments live in %s: the job user cannot reach %s", FALLBACK_ROOT,
             default)
    return FALLBACK_ROOT


_versions: dict[str, str] = {}


def python_version(python: str) -> str:
    """`python`'s version as major.minor."""
    if python not in _versions:
        if os.path.realpath(python) == os.path.realpath(sys.executable):
            _versions[python] = f"{sys.version_info[0]}.{sys.version_info[1]}"
        else:
            _versions[python] = subprocess.run(
                [python, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    return _versions[python]
