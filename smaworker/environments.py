"""Runbook environments: one virtual environment per pinned set and interpreter, built the
first time a job needs it, shared by every job of the same set, removed once unused.

Layout under the root (SMA_ENV_DIR, else <data_dir>/envs where the job user can reach it,
else /var/cache/sma/envs for a root worker):

    <key>/            the environment (bin/python, lib/...), owned by the worker, 0755/0644
    <key>.lock        its lock (flock): exclusive while it is built or removed, shared
                      while a job runs in it
    .build-<key>-*/   a build under way; renamed to <key> in one step when it is complete
    .cache/           uv's (or pip's) download cache, 0700

Every worker process of the host takes the same locks, so two jobs that need a set never
built wait for one build instead of making two; a job holds its environment's lock (shared)
until it ends, so the idle clean-up, which takes it exclusively without waiting, never
removes an environment in use.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smacommon.errors import ConfigurationError
from smacommon.requirements import environment_key
from smacommon.settings import Settings
from smaworker.envbuild import BuildError, KeepAlive, Progress, build, find_uv, index_options
from smaworker.envroot import environment_root, job_reader, python_version
from smaworker.sandbox import Sandbox, accessible

log = logging.getLogger(__name__)

MARKER = "sma-environment.json"
LAST_USED = "last-used"
_POLL_SECONDS = 0.1
_KEEP_ALIVE_SECONDS = 1.0
TIDY_EVERY_SECONDS = 3600.0


def _nothing() -> None:
    pass


@dataclass
class Environment:
    """An environment a job runs in; its lock is held (shared) until `release()`."""

    key: str
    path: Path
    fd: int

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # ends the flock
            self.fd = -1


class Environments:
    """The environments of one root, built with the job's interpreter `python`."""

    def __init__(self, root: Path, python: str, settings: Settings,
                 reader: tuple[int, set[int]] | None = None) -> None:
        self.root = root
        self.python = python
        self.settings = settings
        self.reader = reader  # the job's uid and groups (None: the worker's own)
        self.uv = find_uv()

    def built(self) -> list[str]:
        """The keys of the environments built here (finished: their marker is written)."""
        if not self.root.is_dir():
            return []
        return sorted(entry.name for entry in os.scandir(self.root)
                      if not entry.name.startswith(".") and entry.is_dir()
                      and os.path.isfile(os.path.join(entry.path, MARKER)))

    # --- for a job ---------------------------------------------------------------------

    def ensure(self, requirements: dict[str, Any], *, on_progress: Progress,
               keep_alive: KeepAlive = _nothing,
               private_indexes: list[str] = ()) -> Environment:
        """The environment of `requirements` (a pinned set, smacommon.requirements), built
        now if it is not yet; BuildError (the reason) when it cannot be."""
        pinned = requirements.get("pinned") if isinstance(requirements, dict) else None
        if not pinned or not all(isinstance(p, str) and "==" in p for p in pinned):
            raise BuildError("The job's requirements have no pinned set to install; publish "
                             "the runbook again.")
        python = python_version(self.python)
        wanted = requirements.get("python")
        if wanted and wanted != python:
            on_progress(f"sma: the requirements were resolved for Python {wanted}; this worker "
                        f"runs Python {python} ({self.python}) and installs them for it")
        key = environment_key(pinned, python)
        path = self.root / key
        waited: list[bool] = []

        def on_wait() -> None:  # said once, whether it waits for the lock once or twice
            if not waited:
                waited.append(True)
                on_progress(f"sma: waiting for another job that builds the environment "
                            f"{key[:12]}")

        try:
            self._make_root()
            fd = self._lock(key, fcntl.LOCK_SH, keep_alive, on_wait)
            if (path / MARKER).is_file():
                self._touch(path)
                on_progress(f"sma: reusing the environment {key[:12]}")
                return Environment(key, path, fd)
            os.close(fd)  # then exclusively, to build it
            fd = self._lock(key, fcntl.LOCK_EX, keep_alive, on_wait)
        except OSError as exc:
            raise BuildError(f"The worker could not use its environments folder {self.root}: "
                             f"{exc.strerror or exc}") from None
        try:
            if (path / MARKER).is_file():  # built by the job it waited for
                self._touch(path)
                on_progress(f"sma: reusing the environment {key[:12]}")
            else:
                self._build(key, pinned, python, on_progress, keep_alive,
                            list(private_indexes))
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        return Environment(key, path, fd)

    def _build(self, key: str, pinned: list[str], python: str, on_progress: Progress,
               keep_alive: KeepAlive, private_indexes: list[str]) -> None:
        path = self.root / key
        count = len(pinned)
        on_progress(f"sma: building the environment {key[:12]} for {count} requirement"
                    f"{'' if count == 1 else 's'} with "
                    f"{'uv' if self.uv else 'venv and pip'} (Python {python})")
        started = time.monotonic()
        if path.exists():  # a folder without its marker: not one sma finished
            _remove(path, self.root)
        staging = self.root / f".build-{key}-{secrets.token_hex(4)}"
        try:
            os.mkdir(staging, 0o700)
            build(staging / "env", pinned, self.python, uv=self.uv,
                  indexes=index_options(self.settings), cache=self._cache(),
                  on_line=lambda line: on_progress(f"sma: {line}"), keep_alive=keep_alive,
                  private_indexes=private_indexes)
            # what bin/python links to (the staging folder itself is private until renamed)
            base = (staging / "env" / "bin" / "python").resolve()
            if self.reader is not None and not accessible(base, *self.reader, os.X_OK):
                raise BuildError(
                    f"The environment's interpreter, {base} (the base of {self.python}), is "
                    f"in a folder the job user cannot enter; set SMA_PYTHON to an "
                    f"interpreter installed outside private folders such as /root.")
            marker = {"pinned": sorted(pinned), "python": python, "interpreter": self.python,
                      "built_at": time.time(), "builder": "uv" if self.uv else "pip"}
            for name, text in ((MARKER, json.dumps(marker, indent=1) + "\n"), (LAST_USED, "")):
                (staging / "env" / name).write_text(text, encoding="utf-8")
                os.chmod(staging / "env" / name, 0o644)
            os.rename(staging / "env", path)
        except OSError as exc:
            raise BuildError(f"Building the runbook's environment failed: "
                             f"{exc.strerror or exc}: {exc.filename or self.root}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        on_progress(f"sma: built the environment {key[:12]} in "
                    f"{time.monotonic() - started:.1f} s")

    # --- idle clean-up -----------------------------------------------------------------

    def remove_idle(self, max_idle_days: float) -> list[str]:
        """Remove the environments no job has used for `max_idle_days`, and what builds
        and removals cut short left behind; the keys removed."""
        removed: list[str] = []
        if not self.root.is_dir():
            return removed
        oldest = time.time() - max_idle_days * 86400
        for entry in list(os.scandir(self.root)):
            name = entry.name
            if name.startswith((".build-", ".remove-")):
                key = name.split("-")[1]
                fd = self._try_lock(key)  # free: no build of it is under way
                if fd is not None:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    os.close(fd)
            elif name.endswith(".lock") and not (self.root / name[:-5]).exists():
                fd = self._try_lock(name[:-5])  # of a build that failed, or a removal
                if fd is not None:
                    os.unlink(entry.path)
                    os.close(fd)
            elif len(name) == 64 and entry.is_dir(follow_symlinks=False):
                if self._last_used(Path(entry.path)) >= oldest:
                    continue
                fd = self._try_lock(name)  # None: in use, or being built
                if fd is None:
                    continue
                try:
                    if self._last_used(Path(entry.path)) < oldest:  # still, under the lock
                        _remove(Path(entry.path), self.root)
                        os.unlink(self.root / f"{name}.lock")
                        removed.append(name)
                finally:
                    os.close(fd)
        return removed

    def tidy_until(self, stop: threading.Event, every: float = TIDY_EVERY_SECONDS) -> None:
        """Remove idle environments now and every `every` seconds until `stop` is set."""
        while True:
            try:
                removed = self.remove_idle(self.settings.env_max_idle_days)
                if removed:
                    log.info("removed %d runbook environment(s) unused for %g days: %s",
                             len(removed), self.settings.env_max_idle_days,
                             ", ".join(k[:12] for k in removed))
            except OSError:
                log.warning("could not remove idle runbook environments", exc_info=True)
            if stop.wait(every):
                return

    # --- helpers -----------------------------------------------------------------------

    def _make_root(self) -> None:
        for path in (*reversed(self.root.parents), self.root):
            if not path.exists():
                os.mkdir(path, 0o755)
                os.chmod(path, 0o755)  # whatever the umask: the job user must reach it

    def _cache(self) -> Path:
        cache = self.root / ".cache"
        os.makedirs(cache, 0o700, exist_ok=True)
        os.chmod(cache, 0o700)  # jobs can neither read what it holds nor plant anything
        return cache

    def _lock(self, key: str, kind: int, keep_alive: KeepAlive,
              on_wait: Callable[[], None]) -> int:
        """The key's lock, taken as `kind`; waits (keeping the job alive) while another
        process holds it."""
        next_alive = time.monotonic() + _KEEP_ALIVE_SECONDS
        while True:
            fd = self._try_lock(key, kind)
            if fd is not None:
                return fd
            on_wait()
            time.sleep(_POLL_SECONDS)
            if time.monotonic() >= next_alive:
                keep_alive()
                next_alive = time.monotonic() + _KEEP_ALIVE_SECONDS

    def _try_lock(self, key: str, kind: int = fcntl.LOCK_EX) -> int | None:
        """The key's lock as `kind`, or None when another process holds it."""
        path = self.root / f"{key}.lock"
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, kind | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)  # removed (with its environment) meanwhile: lock the new file

    @staticmethod
    def _touch(path: Path) -> None:
        try:
            os.utime(path / LAST_USED)
        except OSError:  # the time a job last used it is a hint for the clean-up only
            log.debug("could not mark %s used", path, exc_info=True)

    @staticmethod
    def _last_used(path: Path) -> float:
        try:
            return os.stat(path / LAST_USED).st_mtime
        except OSError:
            return os.stat(path).st_mtime


def _remove(path: Path, root: Path) -> None:
    """Out of sight in one step (renamed), then deleted."""
    gone = root / f".remove-{path.name}-{secrets.token_hex(4)}"
    os.rename(path, gone)
    shutil.rmtree(gone, ignore_errors=True)


_current: Environments | None = None


def current_environments(settings: Settings, sandbox: Sandbox) -> Environments:
    """This process's environments, their root worked out (and checked) once."""
    global _current
    if _current is None:
        root = environment_root(settings, sandbox)
        try:
            python_version(sandbox.python)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigurationError(f"{sandbox.python} does not tell its version: {exc}"
                                     ) from None
        _current = Environments(root, sandbox.python, settings, job_reader(settings, sandbox))
    return _current
