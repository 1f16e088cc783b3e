"""Encryption of secrets at rest: Fernet tokens under a list of keys (the first encrypts,
all decrypt), so keys can be rotated."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from smacommon.errors import ConfigurationError
from smacommon.settings import Settings

KEY_FILE = "encryption.key"


def key_file(settings: Settings) -> Path:
    return settings.data_dir.expanduser() / KEY_FILE


def load_keys(settings: Settings, create: bool = True) -> list[bytes]:
    """SMA_ENCRYPTION_KEYS (comma-separated), else the key file in the data folder, made with
    mode 0600 at first start."""
    raw = settings.encryption_keys.strip()
    if raw:
        keys = [k.strip().encode() for k in raw.split(",") if k.strip()]
    else:
        path = key_file(settings)
        if not path.exists():
            if not create:
                raise ConfigurationError(f"No encryption key: set SMA_ENCRYPTION_KEYS or "
                                         f"create {path} (sma up makes one).")
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key() + b"\n")
        keys = [k.strip() for k in path.read_bytes().splitlines() if k.strip()]
    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise ConfigurationError(
                "SMA_ENCRYPTION_KEYS: each key must be 32 url-safe base64-encoded bytes "
                "(make one with `python -c \"from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())\"`).") from None
    return keys


class Crypto:
    """Encrypts with the first key; decrypts with any."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigurationError("No encryption key configured.")
        self._keys = list(keys)
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, data: str | bytes) -> str:
        if isinstance(data, str):
            data = data.encode("utf-8")
        return self._fernet.encrypt(data).decode("ascii")

    def decrypt(self, token: str) -> bytes:
        try:
            return self._fernet.decrypt(token.encode("ascii"))
        except InvalidToken:
            raise ConfigurationError("A secret cannot be decrypted with the configured keys: "
                                     "was SMA_ENCRYPTION_KEYS changed without rotation?") from None

    def decrypt_str(self, token: str) -> str:
        return self.decrypt(token).decode("utf-8")

    def rotate(self, token: str) -> str:
        """The same secret under the first key."""
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")

    def job_keys(self, job_id: uuid.UUID) -> list[str]:
        """One job's own keys (the first encrypts), each derived from a configured key: who
        holds them reads that job's sealed data (smacommon.sealing) and nothing else."""
        return [base64.urlsafe_b64encode(
            hmac.new(key, b"sma-job:" + job_id.bytes, hashlib.sha256).digest()).decode("ascii")
            for key in self._keys]

    def for_job(self, job_id: uuid.UUID) -> Crypto:
        """A Crypto under the job's own keys."""
        return Crypto([k.encode("ascii") for k in self.job_keys(job_id)])


@lru_cache(maxsize=4)
def _crypto_for(keys: tuple[bytes, ...]) -> Crypto:
    return Crypto(list(keys))


def get_crypto(settings: Settings) -> Crypto:
    return _crypto_for(tuple(load_keys(settings)))
