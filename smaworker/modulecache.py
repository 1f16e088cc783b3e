"""Uploaded PowerShell modules and Bash libraries on a worker, fetched through the web service
with the running job's token, each file by its SHA-256, into a cache the job's user can read
but not write:

    <root>/psmodules/<Name>/<Version>/     a PowerShell module, unpacked; the folder is on
                                           the PowerShell jobs' PSModulePath
    <root>/bash/files/<sha256>             a Bash library's bytes
    <root>/bash/<set>/<name>.sh            $SMA_MODULES of a Bash job: each library's highest
    <root>/bash/<set>/<name>/<version>.sh  version, and every version by its own (hard links)

<root> is modules/ in the sandbox's shared folder for a root worker (root's, 0755), else
<data_dir>/modules/worker. Each sync holds <root>/.lock (0600: no job can hold it) and
leaves the cache as the web service lists the modules: new ones fetched, a changed one
replaced, a deleted one removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from smacommon.errors import SmaError
from smacommon.modulefiles.archives import extract_zip
from smacommon.modulefiles.powershell import find_manifest

LOCK_WAIT_SECONDS = 120.0
OLD_SET_SECONDS = 86400.0  # a set no job has used for this long is removed

Fetch = Callable[[str, Path], None]  # (sha256, where to write it)


class ModulesUnavailable(Exception):
    """The cache could not be brought up to date (the web service, a file, the lock)."""


@dataclass(frozen=True)
class CachedModule:
    """A module as the web service lists it for workers."""

    name: str
    version: str
    sha256: str
    uploaded_at: str = ""


class ModuleCache:
    """The cache under `root`; archives unpack to at most `unpacked_limit` bytes."""

    def __init__(self, root: Path, unpacked_limit: int) -> None:
        self.root = root
        self.unpacked_limit = unpacked_limit

    @contextmanager
    def _locked(self) -> Iterator[None]:
        _mkdir(self.root)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_WAIT_SECONDS
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ModulesUnavailable("another job of this worker has been "
                                                 "fetching modules for too long") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def _staging(self) -> Path:
        path = self.root / f".staging-{secrets.token_hex(8)}"
        os.mkdir(path, 0o700)
        return path

    def _sync(self, kind: str, modules: list[CachedModule], fetch: Fetch,
              store_one: Callable[[CachedModule, Fetch, Path], None],
              lay_out: Callable[[Path, list[CachedModule], Path], None]) -> Path:
        """The view of `modules` under <root>/<kind>: each stored once by its hash (made by
        `store_one`), then laid out in a folder of their own (`lay_out`), which no later
        sync changes: a job reads the set it started with."""
        base, store = self.root / kind, self.root / kind / "store"
        listing = "\n".join(sorted(f"{m.name}\t{m.version}\t{m.sha256}" for m in modules))
        view = base / hashlib.sha256(listing.encode()).hexdigest()[:32]
        with self._locked():
            for path in self.root.glob(".*-*"):  # what a sync killed midway left
                if path.name.startswith((".staging-", ".gone-")):
                    shutil.rmtree(path, ignore_errors=True)
            _mkdir(store)
            for module in modules:
                if not (store / module.sha256).exists():
                    store_one(module, fetch, store / module.sha256)
            if not view.is_dir():
                staging = self._staging()
                try:
                    lay_out(staging / "view", modules, store)
                    _readable(staging / "view")
                    os.rename(staging / "view", view)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
            os.utime(view)
            keep = {m.sha256 for m in modules}
            for path in list(store.iterdir()):
                if path.name not in keep:  # the views that link its files keep them
                    self._remove(path)
            for path in list(base.iterdir()):
                if (path not in (store, view) and path.is_dir()
                        and time.time() - path.stat().st_mtime > OLD_SET_SECONDS):
                    self._remove(path)
        return view

    def _remove(self, path: Path) -> None:
        """Out of sight in one step, then deleted."""
        gone = self.root / f".gone-{secrets.token_hex(8)}"
        os.rename(path, gone)
        if gone.is_dir():
            shutil.rmtree(gone, ignore_errors=True)
        else:
            gone.unlink(missing_ok=True)

    # --- PowerShell --------------------------------------------------------------------

    def powershell(self, modules: list[CachedModule], fetch: Fetch) -> Path:
        """The folder to put on PSModulePath: <Name>/<Version>/ of each of `modules`."""
        return self._sync("powershell", modules, fetch, self._unpack, _module_tree)

    def _unpack(self, module: CachedModule, fetch: Fetch, target: Path) -> None:
        staging = self._staging()
        try:
            fetch(module.sha256, staging / "module.zip")
            try:
                with zipfile.ZipFile(staging / "module.zip") as archive:
                    _, _, prefix = find_manifest(archive)
                    extract_zip(archive, prefix, staging / "module", self.unpacked_limit)
            except (SmaError, zipfile.BadZipFile, OSError) as exc:
                raise ModulesUnavailable(f"PowerShell module {module.name} {module.version} "
                                         f"cannot be unpacked: {exc}") from None
            _readable(staging / "module")
            os.rename(staging / "module", target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # --- Bash --------------------------------------------------------------------------

    def bash(self, modules: list[CachedModule], fetch: Fetch) -> Path:
        """The folder a Bash job gets as $SMA_MODULES: <name>.sh, the highest version of
        each library, and <name>/<version>.sh, every version."""
        return self._sync("bash", modules, fetch, _store_file, _library_files)


def _store_file(module: CachedModule, fetch: Fetch, target: Path) -> None:
    fetch(module.sha256, target)
    os.chmod(target, 0o644)


def _module_tree(view: Path, modules: list[CachedModule], store: Path) -> None:
    """<Name>/<Version>/ of each module, its files hard links to the unpacked store."""
    for module in modules:
        source = store / module.sha256
        for path in sorted(source.rglob("*")):
            target = view / module.name / module.version / path.relative_to(source)
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)
        (view / module.name / module.version).mkdir(parents=True, exist_ok=True)


def _library_files(view: Path, modules: list[CachedModule], store: Path) -> None:
    """<name>/<version>.sh of each library and <name>.sh of its highest version."""
    highest: dict[str, CachedModule] = {}
    for module in modules:
        (view / module.name).mkdir(parents=True, exist_ok=True)
        os.link(store / module.sha256, view / module.name / f"{module.version}.sh")
        best = highest.get(module.name)
        if best is None or _order(module) > _order(best):
            highest[module.name] = module
    view.mkdir(parents=True, exist_ok=True)
    for name, module in highest.items():
        os.link(store / module.sha256, view / f"{name}.sh")


def _order(module: CachedModule) -> tuple:
    """Versions by PEP 440 where they follow it (above any that does not), then the newest
    upload."""
    try:
        return (1, Version(module.version), module.uploaded_at)
    except InvalidVersion:
        return (0, module.uploaded_at)


def _mkdir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)


def _readable(folder: Path) -> None:
    """Folders 0755, files 0644: the job's user reads, nobody but the worker writes."""
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
