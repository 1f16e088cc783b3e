"""Python distributions: a wheel's name and version come from its file name and its METADATA,
which must agree (the wheel spec, PEP 427/491); an sdist's from its file name and PKG-INFO."""

from __future__ import annotations

import zipfile

from packaging.metadata import parse_email
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from smacommon.modulefiles.archives import (
    member_path,
    open_zip,
    read_tar_member,
    read_zip_member,
    refuse,
    tar_members,
)
from smacommon.modulefiles.types import ModuleFile, check_module_name, normalize

SDIST_SUFFIXES = (".tar.gz", ".zip")


def _metadata(raw: bytes, what: str) -> tuple[str, Version]:
    """Name and version from a METADATA or PKG-INFO file (RFC 822 headers)."""
    fields, _ = parse_email(raw)
    name, version = fields.get("name"), fields.get("version")
    if not name or not version:
        raise refuse(f"The {what} has no Name or no Version header; rebuild the package.")
    try:
        return check_module_name(name), Version(version)
    except InvalidVersion:
        raise refuse(f"The {what} says Version {version!r}, which is not a PEP 440 "
                     "version.") from None


def _agree(file_name: str, file_version: Version, name: str, version: Version,
           what: str) -> None:
    if canonicalize_name(file_name) != canonicalize_name(name) or file_version != version:
        raise refuse(f"The file name says {file_name} {file_version} but its {what} says "
                     f"{name} {version}; rebuild the package (or keep its file name).")


def inspect_wheel(filename: str, data: bytes, unpacked_limit: int) -> ModuleFile:
    """A wheel: a valid wheel file name, one .dist-info folder whose METADATA agrees."""
    try:
        file_name, file_version, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise refuse(f"{filename!r} is not a valid wheel file name ({exc}); a wheel is named "
                     "{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl.") from None
    archive = open_zip(data, unpacked_limit, "wheel")
    metadata = sorted({str(member_path(n)) for n in archive.namelist()
                       if len(member_path(n).parts) == 2
                       and member_path(n).parts[0].endswith(".dist-info")
                       and member_path(n).name == "METADATA"})
    if len(metadata) != 1:
        found = "none" if not metadata else ", ".join(metadata)
        raise refuse(f"A wheel has exactly one <name>-<version>.dist-info/METADATA; this one "
                     f"has {found}.")
    member = next(n for n in archive.namelist() if str(member_path(n)) == metadata[0])
    name, version = _metadata(read_zip_member(archive, member), "wheel's METADATA")
    _agree(file_name, file_version, name, version, "METADATA")
    return ModuleFile(name, normalize(name), str(version), "python", filename)


def _sdist_name(filename: str) -> tuple[str, Version]:
    try:
        return parse_sdist_filename(filename)
    except (InvalidSdistFilename, InvalidVersion) as exc:
        raise refuse(f"{filename!r} is not a valid sdist file name ({exc}); an sdist is "
                     "named {name}-{version}.tar.gz (or .zip).") from None


def inspect_sdist(filename: str, data: bytes, unpacked_limit: int) -> ModuleFile:
    """An sdist (.tar.gz or .zip): its one top folder holds a PKG-INFO that agrees with the
    file name."""
    file_name, file_version = _sdist_name(filename)
    raw = None
    if filename.endswith(".zip"):
        archive = open_zip(data, unpacked_limit, "sdist")
        for member in archive.namelist():
            if _is_pkg_info(member):
                raw = read_zip_member(archive, member)
                break
    else:
        for tar, info in tar_members(data, unpacked_limit):
            if raw is None and info.isfile() and _is_pkg_info(info.name):
                raw = read_tar_member(tar, info)
    if raw is None:
        raise refuse("An sdist has a PKG-INFO file in its top folder ({name}-{version}/"
                     "PKG-INFO); this one has none. Build it with `python -m build --sdist`.")
    name, version = _metadata(raw, "sdist's PKG-INFO")
    _agree(file_name, file_version, name, version, "PKG-INFO")
    return ModuleFile(name, normalize(name), str(version), "python", filename)


def _is_pkg_info(member: str) -> bool:
    path = member_path(member)
    return len(path.parts) == 2 and path.name == "PKG-INFO"


def zip_is_sdist(archive: zipfile.ZipFile) -> bool:
    """Whether a zip looks like an sdist (a PKG-INFO in its top folder)."""
    return any(_is_pkg_info(n) for n in archive.namelist())
