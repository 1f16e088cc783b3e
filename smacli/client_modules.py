"""The client's calls on uploaded modules (/api/v1/modules), mixed into SmaClient."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smacli.client_base import Resource, SmaApiError, quote

if TYPE_CHECKING:
    import requests


@dataclass
class Module(Resource):
    id: str | None = None
    name: str | None = None
    normalized_name: str | None = None
    version: str | None = None
    module_type: str | None = None  # python, powershell, bash
    filename: str | None = None
    size: int | None = None
    sha256: str | None = None
    uploaded_by: str | None = None
    uploaded_at: str | None = None


class ModulesApi:
    """Upload, list, read, download and delete modules (SmaClient's transport carries the
    calls: request, _json, _pages)."""

    request: Callable[..., requests.Response]
    _json: Callable[..., Any]
    _pages: Callable[..., Iterator[Any]]

    def modules(self, name: str | None = None, module_type: str | None = None
                ) -> Iterator[Module]:
        """Uploaded modules, newest first (`name`: names containing it)."""
        return self._pages("/modules", Module, name=name, type=module_type)

    def get_module(self, name: str, version: str) -> Module:
        return Module.from_api(self._json("GET", f"/modules/{quote(name)}/{quote(version)}"))

    def upload_module(self, path: str | os.PathLike[str], *, module_type: str | None = None,
                      version: str | None = None) -> tuple[Module, bool]:
        """Upload a wheel, sdist, PowerShell module zip or Bash library: (the module, True
        when it is new; False when this very file was uploaded before)."""
        path = Path(path)
        fields = {k: v for k, v in (("type", module_type), ("version", version)) if v}
        with open(path, "rb") as fh:
            resp = self.request("POST", "/modules", files={"file": (path.name, fh)},
                                data=fields)
        return Module.from_api(resp.json()), resp.status_code == 201

    def download_module(self, name: str, version: str, target: str | os.PathLike[str]) -> Path:
        """Write the module's file to `target` (a folder: under its own file name), checked
        against its SHA-256; the path written."""
        target = Path(target)
        resp = self.request("GET", f"/modules/{quote(name)}/{quote(version)}/content",
                            stream=True)
        if target.is_dir():
            filename = resp.headers.get("Content-Disposition", "").rpartition("filename=")[2]
            target = target / (filename.strip('"') or f"{name}-{version}")
        expected = resp.headers.get("ETag", "").strip('"')
        digest = hashlib.sha256()
        partial = target.with_name(f".{target.name}.part")
        with resp, open(partial, "wb") as out:
            for chunk in resp.iter_content(1024 * 1024):
                digest.update(chunk)
                out.write(chunk)
        if expected and digest.hexdigest() != expected:
            partial.unlink()
            raise SmaApiError(0, f"The download of {name} {version} is damaged: its SHA-256 is "
                                 f"{digest.hexdigest()}, not {expected}; try again.")
        os.replace(partial, target)
        return target

    def delete_module(self, name: str, version: str) -> None:
        self._json("DELETE", f"/modules/{quote(name)}/{quote(version)}")
