"""Module files the tests build themselves (sdists, PowerShell zips, Bash libraries; wheels
come from tests/pkgindex.py), the upload call, and the pinned set a published version gets."""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from smacommon.db import get_engine
from smacommon.models import Runbook
from smacommon.requirements import environment_key


def zip_bytes(files: dict[str, str | bytes]) -> bytes:
    """A zip of `files` (member name -> text or bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def pkg_info(name: str, version: str) -> str:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"


def make_sdist(folder: Path, name: str, version: str, suffix: str = ".tar.gz") -> Path:
    """An sdist of `name` `version` (PEP 625's file name), as .tar.gz or .zip."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = re.sub(r"[-_.]+", "_", name).lower()
    top = f"{dist}-{version}"
    files = {f"{top}/PKG-INFO": pkg_info(name, version),
             f"{top}/pyproject.toml": f'[project]\nname = "{name}"\nversion = "{version}"\n',
             f"{top}/{dist}/__init__.py": f"VERSION = {version!r}\n"}
    path = folder / f"{top}{suffix}"
    if suffix == ".zip":
        path.write_bytes(zip_bytes(files))
        return path
    with tarfile.open(path, "w:gz") as archive:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def manifest(version: str, root_module: str = "Tools.psm1") -> str:
    """A module manifest as New-ModuleManifest writes one (comments, nested hashtables)."""
    return (f"#\n# Module manifest\n#\n@{{\n    RootModule = '{root_module}'\n"
            f"    ModuleVersion = '{version}'  # the version\n"
            "    GUID = 'b9e8a8f4-0c4b-4a63-9d8f-0a3c1b9b7d11'\n"
            "    FunctionsToExport = @('Get-Tool')\n"
            "    PrivateData = @{ PSData = @{ Tags = @('sma') } }\n}\n")


def powershell_zip(name: str, version: str, versioned: bool = False) -> bytes:
    """A PowerShell module zipped as Compress-Archive makes one: <Name>/<Name>.psd1 (or
    <Name>/<Version>/<Name>.psd1, as Save-Module lays it out)."""
    folder = f"{name}/{version}" if versioned else name
    return zip_bytes({f"{folder}/{name}.psd1": manifest(version, f"{name}.psm1"),
                      f"{folder}/{name}.psm1": "function Get-Tool { 'tool' }\n"})


def upload(api, data: bytes, filename: str, **fields: str):
    """POST /api/v1/modules as curl -F file=@FILE [-F type=...] sends it."""
    return api.post("/api/v1/modules", data={"file": (io.BytesIO(data), filename), **fields},
                    content_type="multipart/form-data")


def pin(database_url: str, runbook: str, pinned: list[str], python: str = "3.11") -> None:
    """Give the runbook's published version the pinned set publishing resolves its
    requirements to (smacommon.requirements)."""
    with Session(get_engine(database_url)) as session, session.begin():
        version = session.scalar(select(Runbook).where(Runbook.name == runbook)
                                 ).published_version
        version.requirements = {"dependencies": list(pinned), "requires_python": None,
                                "pinned": sorted(pinned), "python": python,
                                "key": environment_key(pinned, python)}
