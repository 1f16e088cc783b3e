"""Zip and tar archives read without trusting them: member names that could leave the folder
they are unpacked into, links, too many members and too many unpacked bytes are refused
before anything is read or written."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from smacommon.errors import ValidationFailed

MAX_MEMBERS = 20_000
MAX_METADATA_BYTES = 1024 * 1024  # a METADATA, PKG-INFO or .psd1 file
UNPACKED_FACTOR = 4  # an archive unpacks to at most this many times SMA_MODULE_MAX_MB


def refuse(message: str) -> ValidationFailed:
    """The 400 of a bad upload: `message` says what is wrong with the file."""
    return ValidationFailed(message, {"file": [message]})


def member_path(name: str) -> PurePosixPath:
    """A member's path inside the archive, relative; refused when absolute or with `..`
    (Windows' zips may separate with backslashes: they count as separators here)."""
    cleaned = name.replace("\\", "/")
    path = PurePosixPath(cleaned)
    if (cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":")
            or ".." in path.parts or "\x00" in cleaned):
        raise refuse(f"The archive's member {name!r} points outside the archive (an absolute "
                     "path or '..'); sma refuses such archives.")
    return path


def open_zip(data: bytes, unpacked_limit: int, what: str) -> zipfile.ZipFile:
    """The zip in `data`, its members checked (names, links, count, unpacked size)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise refuse(f"The file is not a valid zip archive, which a {what} must be.") from None
    if len(members) > MAX_MEMBERS:
        raise refuse(f"The archive has {len(members)} members; sma takes at most "
                     f"{MAX_MEMBERS}.")
    total = 0
    for info in members:
        member_path(info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise refuse(f"The archive's member {info.filename!r} is a symbolic link; sma "
                         "takes regular files and folders only.")
        total += info.file_size
    if total > unpacked_limit:
        raise refuse(f"The archive unpacks to {total} bytes, more than the {unpacked_limit} "
                     "bytes sma allows (four times SMA_MODULE_MAX_MB).")
    return archive


def read_zip_member(archive: zipfile.ZipFile, name: str, limit: int = MAX_METADATA_BYTES
                    ) -> bytes:
    """A member's bytes, at most `limit` of them (a size the header understated stops there)."""
    try:
        with archive.open(name) as member:
            data = member.read(limit + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise refuse(f"The archive's member {name!r} cannot be read: {exc}.") from None
    if len(data) > limit:
        raise refuse(f"The archive's member {name!r} is larger than {limit} bytes.")
    return data


def tar_members(data: bytes, unpacked_limit: int) -> Iterator[tuple[tarfile.TarFile,
                                                                     tarfile.TarInfo]]:
    """The members of the gzipped tar in `data`, each checked before it is read (a file or
    a folder, a safe name; the count and the unpacked size bounded)."""
    total = count = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for info in archive:
                count += 1
                total += info.size
                member_path(info.name)
                if not (info.isfile() or info.isdir()):
                    raise refuse(f"The archive's member {info.name!r} is a link or a device; "
                                 "sma takes regular files and folders only.")
                if count > MAX_MEMBERS or total > unpacked_limit:
                    raise refuse(f"The archive has more than {MAX_MEMBERS} members or unpacks "
                                 f"to more than {unpacked_limit} bytes (four times "
                                 "SMA_MODULE_MAX_MB); sma refuses it.")
                yield archive, info
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise refuse(f"The file is not a valid .tar.gz archive: {exc}.") from None


def read_tar_member(archive: tarfile.TarFile, info: tarfile.TarInfo,
                    limit: int = MAX_METADATA_BYTES) -> bytes:
    """A member's bytes, at most `limit` of them."""
    if info.size > limit:
        raise refuse(f"The archive's member {info.name!r} is larger than {limit} bytes.")
    member = archive.extractfile(info)
    return member.read(limit + 1) if member is not None else b""


def extract_zip(archive: zipfile.ZipFile, prefix: str, folder: Path,
                unpacked_limit: int) -> None:
    """Write the members under `prefix` (a folder of the archive, "" for all) into `folder`,
    counting the bytes actually unpacked (a header may understate them)."""
    base = PurePosixPath(prefix) if prefix else None
    written = 0
    for info in archive.infolist():
        path = member_path(info.filename)
        if base is not None:
            if path.parts[:len(base.parts)] != base.parts:
                continue
            path = PurePosixPath(*path.parts[len(base.parts):]) if len(path.parts) > len(
                base.parts) else PurePosixPath(".")
        target = folder.joinpath(*path.parts) if path.parts else folder
        if info.is_dir() or info.filename.endswith(("/", "\\")):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, open(target, "wb") as out:
            while chunk := source.read(1024 * 1024):
                written += len(chunk)
                if written > unpacked_limit:
                    raise refuse(f"The archive unpacks to more than {unpacked_limit} bytes.")
                out.write(chunk)
