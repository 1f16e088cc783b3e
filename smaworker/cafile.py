"""The CA file jobs trust for SMA_API_URL (SMA_API_CA_FILE), as the job's user may read it.

`sma up --tls-cert` may point at a PEM holding the certificate *and* its private key; a job
gets the certificate blocks only, never a key. A copy lives in the host's shared folder,
named after the worker process that made it (as job folders are), and goes when that
worker stops; a worker that died leaves it to the next one's sweep of dead owners. Each
worker has its own copy, so none removes a file another live worker hands to its jobs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from pathlib import Path

from smacommon.errors import ConfigurationError

log = logging.getLogger(__name__)

# a certificate block: base64 lines only between its markers, so nothing else (a private
# key's block in a malformed file) can ride along
_CERTIFICATE = re.compile(rb"-----BEGIN ((?:TRUSTED |X509 )?CERTIFICATE)-----\r?\n"
                          rb"[A-Za-z0-9+/=\r\n]+-----END \1-----")
_made: list[Path] = []


def certificates(data: bytes) -> bytes:
    """The certificate blocks of a PEM file, nothing else."""
    return b"".join(m.group(0) + b"\n" for m in _CERTIFICATE.finditer(data))


def for_jobs(path: str, shared: Path, readable: bool) -> str:
    """`path` when the job's user may read it and it holds no private key, else a copy of
    its certificates (0644) in `shared`, removed by remove_copies()."""
    data = Path(path).read_bytes()
    if readable and b"PRIVATE KEY" not in data:
        return path
    found = certificates(data)
    if not found:
        raise ConfigurationError(f"SMA_API_CA_FILE: {path} holds no PEM certificate")
    if readable:
        log.warning("SMA_API_CA_FILE %s holds a private key the job user can read; jobs get "
                    "a copy of its certificates only, but keep the key in a file of its own",
                    path)
    target = shared / f"{os.getpid()}-ca-{hashlib.sha256(found).hexdigest()[:16]}.pem"
    staging = shared / f".{target.name}.{secrets.token_hex(4)}"
    staging.write_bytes(found)
    os.chmod(staging, 0o644)
    os.replace(staging, target)
    _made.append(target)
    return str(target)


def remove_copies() -> None:
    """Remove the copies this process made (at the worker's shutdown)."""
    while _made:
        _made.pop().unlink(missing_ok=True)


def remove_keyed_copies(shared: Path) -> None:
    """Remove copies earlier versions of sma made of a whole CA file, private key and all
    (named file-<hash>), which they left behind."""
    for path in shared.glob("file-*"):
        try:
            if b"PRIVATE KEY" in path.read_bytes():
                path.unlink()
                log.warning("removed %s: an old copy of SMA_API_CA_FILE with a private key",
                            path)
        except OSError:
            pass
