"""A job's own keys, asked of the web service with the job's token: workers hold no
configured encryption key, only the keys of the jobs they run, while they run them."""

from __future__ import annotations

import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

from smacommon.crypto import Crypto
from smacommon.sealing import unseal
from smacommon.settings import Settings
from smaworker.masking import Masker, secrets_of

log = logging.getLogger(__name__)
_RETRY_SECONDS = 5.0


class JobKeysUnavailable(Exception):
    """The web service did not give the job's keys."""


class JobKeys:
    """The keys of one job, asked for once, when first needed (most jobs never need them)."""

    def __init__(self, settings: Settings, token: str) -> None:
        self.settings = settings
        self.token = token
        self.crypto: Crypto | None = None
        self._retry_at = 0.0

    def get(self) -> Crypto:
        """The job's keys; JobKeysUnavailable when the web service does not give them."""
        if self.crypto is None:
            self.crypto = fetch_job_crypto(self.settings, self.token)
        return self.crypto

    def get_soon(self, *, now: bool = False) -> Crypto | None:
        """The job's keys, or None while they cannot be had (asked again at most every
        5 s, or at once with `now`)."""
        if self.crypto is None and not now and time.monotonic() < self._retry_at:
            return None
        try:
            return self.get()
        except JobKeysUnavailable as exc:
            self._retry_at = time.monotonic() + _RETRY_SECONDS
            log.warning("%s", exc)
            return None

    def open(self, job: Any, masker: Masker, tries: int = 3) -> tuple[dict[str, Any], Any]:
        """The job's parameters and checkpoint, the sealed ones opened (the values of its
        secret parameters are masked from now on)."""
        parameters, checkpoint = dict(job.parameters or {}), job.checkpoint
        if not (job.sealed_parameters or job.sealed_checkpoint):
            return parameters, checkpoint
        for attempt in range(tries):
            try:
                keys = self.get()
                break
            except JobKeysUnavailable:
                if attempt == tries - 1:
                    raise
                time.sleep(1.0)
        if job.sealed_parameters:
            secret = unseal(keys, job.sealed_parameters)
            for value in secret.values():
                for text in secrets_of(value):
                    masker.add(text)
            parameters.update(secret)
        if job.sealed_checkpoint:
            checkpoint = unseal(keys, job.sealed_checkpoint)
        return parameters, checkpoint


def fetch_job_crypto(settings: Settings, token: str, timeout: float = 5.0) -> Crypto:
    """A Crypto under the job's keys (GET /api/v1/runtime/job-keys)."""
    url = f"{settings.api_url.rstrip('/')}/api/v1/runtime/job-keys"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    context = (ssl.create_default_context(cafile=settings.api_ca_file)
               if settings.api_ca_file else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            keys = json.load(resp)["keys"]
        return Crypto([key.encode("ascii") for key in keys])
    except urllib.error.HTTPError as exc:
        raise JobKeysUnavailable(f"the web service answered {exc.code} {exc.reason} at "
                                 f"{url}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise JobKeysUnavailable(f"the web service cannot be reached at {url}: "
                                 f"{exc}") from None
