"""A real package index for the tests: pypiserver on a free port, serving wheels the tests
build themselves (make_wheel), so no test of requirements needs the network."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

from smacommon.embedded_redis import free_port


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def make_wheel(folder: Path, name: str, version: str, files: dict[str, str] | None = None,
               requires: list[str] | None = None) -> Path:
    """A pure-Python wheel of `name` `version`: `files` (path -> text) or a module `name`
    whose VERSION is the version; `requires` its Requires-Dist."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = re.sub(r"[-_.]+", "_", name).lower()
    module = dist
    files = files or {f"{module}/__init__.py": f"VERSION = {version!r}\n"}
    info = f"{dist}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {r}" for r in requires or []]
    entries = dict(files)
    entries[f"{info}/METADATA"] = "\n".join(metadata) + "\n"
    entries[f"{info}/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: sma-tests\n"
                                "Root-Is-Purelib: true\nTag: py3-none-any\n")
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for arcname, text in entries.items():
            data = text.encode("utf-8")
            wheel.writestr(arcname, data)
            record.append(f"{arcname},{_record_hash(data)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


class PackageIndex:
    """pypiserver serving `folder` at `url` (a PEP 503 simple index at `url`/simple/)."""

    def __init__(self, folder: Path, log_path: Path) -> None:
        self.folder = folder
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.simple = f"{self.url}/simple/"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> PackageIndex:
        self.folder.mkdir(parents=True, exist_ok=True)
        server = shutil.which("pypi-server", path=os.path.dirname(sys.executable))
        argv = ([server] if server else [sys.executable, "-m", "pypiserver"]) + [
            "run", "-p", str(self.port), "-i", "127.0.0.1", "-a", ".", "-P", ".",
            "--disable-fallback", "--backend", "simple-dir", str(self.folder)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pypiserver exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.simple, timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"pypiserver did not answer within {timeout} s")

    def add(self, name: str, version: str, **kwargs) -> Path:
        """A wheel built and served from now on."""
        return make_wheel(self.folder, name, version, **kwargs)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
