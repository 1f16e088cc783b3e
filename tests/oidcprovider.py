"""A real OpenID provider for the sign-in tests: django-oidc-provider in the small Django
project of tests/oidc_provider/, with its SQLite database in a temporary folder, served by
Django's own server on a free port and stopped (its own pid) at the end.

Its people: bob@example.com (password bob-pw, group sma-operators) and carol@example.com
(carol-pw, group `others`, which no role maps); its client `sma` is confidential, skips
consent and accepts PKCE; the ID token carries `email` and `groups`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "sma"
CLIENT_SECRET = "sma-client-secret-for-tests"
PASSWORDS = {"bob@example.com": "bob-pw", "carol@example.com": "carol-pw"}


class OidcProvider:
    """One provider process; `issuer` is its OpenID issuer (discovery under it)."""

    def __init__(self, tmp: Path, redirect_uri: str) -> None:
        self.tmp, self.redirect_uri = tmp, redirect_uri
        self.port, self.url, self.issuer = 0, "", ""  # chosen when it starts
        self.proc: subprocess.Popen | None = None
        self.env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "LANG": "C.UTF-8",
                    "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE":
                    "tests.oidc_provider.settings", "OIDCP_DB": str(tmp / "provider.sqlite3")}

    def _run(self, *args: str) -> None:
        subprocess.run([sys.executable, *args], env=self.env, cwd=ROOT, check=True,
                       capture_output=True, timeout=120)

    def start(self) -> OidcProvider:
        self._run("-m", "django", "migrate", "--noinput")
        self._run(str(ROOT / "tests/oidc_provider/setup_data.py"), self.redirect_uri,
                  CLIENT_SECRET)
        # Django's server cannot be handed a bound socket: a free port is chosen just
        # before it starts, and another one if a parallel test took it in between.
        for _attempt in range(5):
            if self._serve():
                return self
        raise RuntimeError("the OpenID provider found no free port: "
                           + (self.tmp / "provider.log").read_text(errors="replace"))

    def _serve(self) -> bool:
        """Start the server on a free port: False if the port was taken meanwhile."""
        from smacommon.embedded_redis import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = f"{self.url}/openid"
        self.env["OIDCP_SITE_URL"] = self.url
        log = open(self.tmp / "provider.log", "wb")  # noqa: SIM115 (the process keeps it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "django", "runserver", "--noreload", "--skip-checks",
             f"127.0.0.1:{self.port}"], env=self.env, cwd=ROOT, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{self.issuer}/.well-known/openid-configuration",
                                timeout=2).ok:
                    return True
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                said = (self.tmp / "provider.log").read_text(errors="replace")
                if "already in use" in said:
                    return False
                raise RuntimeError(f"the OpenID provider did not start: {said}")
            time.sleep(0.1)

    def rotate_key(self) -> None:
        """A new signing key replaces the old one (the provider's JWKS changes)."""
        self._run(str(ROOT / "tests/oidc_provider/setup_data.py"), "rotate")

    def ungroup(self, user: str) -> None:
        """Take `user` out of every group."""
        self._run(str(ROOT / "tests/oidc_provider/setup_data.py"), "ungroup", user)

    def regroup(self, user: str, group: str) -> None:
        self._run(str(ROOT / "tests/oidc_provider/setup_data.py"), "regroup", user, group)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
