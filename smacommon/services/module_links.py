"""The uploaded Python modules as a folder of files, for the resolver's `--find-links` at
publish (on the web host, which reads them from the database).

The folder holds `blobs/<sha256>` (each file's bytes, written once) and `links/<filename>`
(a hard link to its blob): `links` is what uv reads. A module deleted since is gone from
`links` at the next call, so a new version can never resolve to it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from smacommon.models import Module, ModuleBlob
from smacommon.settings import Settings


def find_links_folder(settings: Settings) -> Path:
    """Where the web service keeps the uploaded Python modules' files for its resolver."""
    return settings.data_dir / "modules" / "python"


def python_find_links(session: Session, folder: Path) -> list[str]:
    """Bring `folder` up to date with the uploaded Python modules; the folders to give uv's
    `--find-links` ([] when there are none)."""
    blobs, links = folder / "blobs", folder / "links"
    blobs.mkdir(parents=True, exist_ok=True)
    links.mkdir(exist_ok=True)
    # one process at a time brings it up to date (several web workers may publish at once)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = session.execute(select(Module.filename, Module.sha256)
                               .where(Module.module_type == "python")).all()
        for filename, sha256 in rows:
            blob = blobs / sha256
            if not blob.exists():
                _write_blob(session, blob, sha256)
            _link(blob, links / filename)
        wanted = {filename for filename, _ in rows}
        for path in links.iterdir():
            if path.name not in wanted:
                path.unlink(missing_ok=True)
        kept = {sha256 for _, sha256 in rows}
        for path in blobs.iterdir():
            if path.name not in kept:
                path.unlink(missing_ok=True)
    return [str(links)] if rows else []


def _write_blob(session: Session, blob: Path, sha256: str) -> None:
    """Write a module's bytes from the database, checked against their hash."""
    content = session.scalar(select(ModuleBlob.content).where(ModuleBlob.sha256 == sha256))
    if content is None or hashlib.sha256(content).hexdigest() != sha256:
        raise RuntimeError(f"the content of module file {sha256} is missing or damaged")
    tmp = blob.with_name(f".{sha256}.{uuid.uuid4().hex}")
    tmp.write_bytes(content)
    os.replace(tmp, blob)


def _link(blob: Path, link: Path) -> None:
    """`link` names `blob` (a hard link; a copy where the file system has none)."""
    try:
        if os.path.samefile(blob, link):
            return
    except FileNotFoundError:
        pass
    tmp = blob.with_name(f".{link.name}.{uuid.uuid4().hex}")
    try:
        os.link(blob, tmp)
    except OSError:
        shutil.copyfile(blob, tmp)
    os.replace(tmp, link)
