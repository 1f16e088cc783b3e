"""The keys that sign job identity tokens, kept in <data dir>/signing-keys.

Each key is an RSA 2048 private key in a PEM file (0600, folder 0700) named by the time it
was made (`key-20250101T120000.000000Z.pem`). The newest key signs. An older key stays in
the JWKS until every token it can have signed has expired: a token lives at most
MAX_LIFETIME, and the older key stopped signing when the next key was made, so it is
published until then + MAX_LIFETIME + RETAIN_MARGIN (verifiers cache a JWKS for a while),
after which `rotate()` removes its file.

Two web processes may want the first key at once, and `sma keys rotate-signing` may run
beside them: keys are made under an exclusive lock (flock on `.lock`), written to a
temporary file and renamed into place, so a reader sees a whole key or none. Readers take no
lock; a `KeyRing` re-reads the folder when its modification time changes.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_FOLDER = "signing-keys"
ALGORITHM = "RS256"  # what AWS STS and Microsoft Entra ID accept from an OIDC provider
KEY_BITS = 2048
MAX_LIFETIME = 3600  # seconds: no identity token lives longer
RETAIN_MARGIN = 900  # seconds an old key stays published beyond its last token's expiry
RETAIN_SECONDS = MAX_LIFETIME + RETAIN_MARGIN
REREAD_SECONDS = 30.0  # re-read anyway (a file system whose mtime is coarse)
_STAMP = "%Y%m%dT%H%M%S.%fZ"


@dataclass(frozen=True)
class SigningKey:
    """One key of the folder: its `kid` (RFC 7638 thumbprint) and when it was made."""

    kid: str
    created: float  # Unix time, from the file's name
    private: rsa.RSAPrivateKey
    path: Path

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK, as a JWKS lists it."""
        return {**_public_jwk(self.private.public_key()), "kid": self.kid, "use": "sig",
                "alg": ALGORITHM}


def key_folder(data_dir: Path | str) -> Path:
    return Path(data_dir).expanduser() / KEY_FOLDER


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _public_jwk(public: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public.public_numbers()
    return {"kty": "RSA", "n": _b64(numbers.n), "e": _b64(numbers.e)}


def thumbprint(public: rsa.RSAPublicKey) -> str:
    """RFC 7638: SHA-256 of the required members in lexical order, no whitespace, base64url."""
    canonical = json.dumps(_public_jwk(public), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _created(path: Path) -> float | None:
    """When the key of this file name was made (None: not a key file)."""
    if not (path.name.startswith("key-") and path.name.endswith(".pem")):
        return None
    try:
        stamp = datetime.strptime(path.name[4:-4], _STAMP)
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC).timestamp()


def _load(path: Path, created: float) -> SigningKey:
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA private key")
    return SigningKey(thumbprint(private.public_key()), created, private, path)


def read_keys(folder: Path, known: dict[Path, SigningKey] | None = None) -> list[SigningKey]:
    """Every key of the folder, oldest first (`known`: keys already read, not parsed again)."""
    found = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        created = _created(path)
        if created is None:
            continue
        key = (known or {}).get(path)
        try:
            found.append(key if key is not None else _load(path, created))
        except FileNotFoundError:  # removed by a rotation meanwhile
            continue
    return sorted(found, key=lambda k: k.created)


def published(keys: list[SigningKey], now: float | None = None) -> list[SigningKey]:
    """The keys a verifier may still need: the newest, and each older one until
    RETAIN_SECONDS after the next key was made (when it stopped signing)."""
    now = time.time() if now is None else now
    return [key for key, successor in zip(keys, [*keys[1:], None], strict=True)
            if successor is None or now < successor.created + RETAIN_SECONDS]


def _prepare(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid == os.geteuid():
        folder.chmod(0o700)


def _owned_like_folder(path: Path, folder: Path) -> None:
    """As root (`sma keys rotate-signing` by an administrator), a new file belongs to the
    folder's owner, the user the web service runs as, who must read it."""
    if os.geteuid() == 0:
        st = folder.stat()
        if st.st_uid != 0:
            os.chown(path, st.st_uid, st.st_gid)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    _prepare(folder)
    lock = folder / ".lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _owned_like_folder(lock, folder)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_key(folder: Path, now: float) -> Path:
    """A new key file, whole or not at all (the caller holds the lock)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    # a name later than every key's, even when the clock went back
    newest = max((k.created for k in read_keys(folder)), default=0.0)
    when = datetime.fromtimestamp(max(now, newest + 1e-3), UTC)
    final = folder / f"key-{when.strftime(_STAMP)}.pem"
    temporary = folder / f".tmp-{secrets.token_hex(8)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        _owned_like_folder(temporary, folder)
        os.rename(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return final


def ensure_key(folder: Path, now: float | None = None) -> None:
    """Make the first key unless the folder has one (once, however many processes ask)."""
    with _locked(folder):
        if not read_keys(folder):
            _write_key(folder, time.time() if now is None else now)


def rotate(folder: Path, now: float | None = None) -> tuple[SigningKey, list[SigningKey]]:
    """Make a new key, which signs from now on; remove the keys no token needs any more.
    Returns the new key and the keys removed."""
    now = time.time() if now is None else now
    with _locked(folder):
        path = _write_key(folder, now)
        keys = read_keys(folder)
        kept = {k.path for k in published(keys, now)}
        removed = [k for k in keys if k.path not in kept]
        for key in removed:
            key.path.unlink(missing_ok=True)
    return next(k for k in keys if k.path == path), removed


class KeyRing:
    """The keys of one folder for a long-lived process: read once, read again when the
    folder changes; the first key is made on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = []
        self._stamp: tuple[int, int] | None = None
        self._read_at = 0.0

    def _folder_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.folder)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_ino

    def keys(self) -> list[SigningKey]:
        """Every key, oldest first (never empty)."""
        stamp = self._folder_stamp()
        if (self._keys and stamp == self._stamp
                and time.monotonic() - self._read_at < REREAD_SECONDS):
            return self._keys
        with self._lock:
            stamp = self._folder_stamp()  # before reading: a change while reading shows next
            keys = read_keys(self.folder, {k.path: k for k in self._keys})
            if not keys:
                ensure_key(self.folder)
                stamp = self._folder_stamp()
                keys = read_keys(self.folder)
            self._keys, self._stamp, self._read_at = keys, stamp, time.monotonic()
            return keys

    def jwks(self, now: float | None = None) -> dict[str, list[dict[str, str]]]:
        """The JSON Web Key Set of the keys a verifier may need."""
        return {"keys": [k.jwk() for k in reversed(published(self.keys(), now))]}

    def sign(self, claims: dict[str, Any]) -> str:
        """`claims` as a JWT signed by the newest key (its kid in the header)."""
        key = self.keys()[-1]
        return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


_rings: dict[Path, KeyRing] = {}
_rings_lock = threading.Lock()


def keyring(data_dir: Path | str) -> KeyRing:
    """The process's KeyRing of this data folder."""
    folder = key_folder(data_dir).resolve()
    with _rings_lock:
        ring = _rings.get(folder)
        if ring is None:
            ring = _rings[folder] = KeyRing(folder)
        return ring
