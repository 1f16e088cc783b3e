"""A PowerShell or Bash job's uploaded modules, made ready before its process starts: listed
and fetched with the job's own token (GET /api/v1/runtime/modules), cached on the worker
(smaworker.modulecache). When the web service cannot be asked, the job runs with what the
worker already has, and a Warning record says so."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from smacommon.modulefiles.archives import UNPACKED_FACTOR
from smacommon.modulefiles.bash import VERSION  # also a PowerShell module's
from smacommon.names import MODULE
from smacommon.settings import Settings
from smaworker.modulecache import CachedModule, Fetch, ModuleCache, ModulesUnavailable
from smaworker.sandbox import Sandbox

log = logging.getLogger(__name__)

MODULE_TYPES = ("powershell", "bash")
_CHUNK = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


def module_index_url(settings: Settings, token: str) -> str:
    """sma's index of the uploaded Python modules, the job's token as its basic-auth password,
    for uv's or pip's extra index when a job's environment is built. Give it through the
    environment (UV_EXTRA_INDEX_URL, PIP_EXTRA_INDEX_URL), never on a command line, which
    every local user can read."""
    parts = urlsplit(settings.api_url.rstrip("/"))
    return urlunsplit((parts.scheme, f"sma:{quote(token, safe='')}@{parts.netloc}",
                       f"{parts.path}/api/v1/modules/simple/", "", ""))


def cache_root(settings: Settings, sandbox: Sandbox) -> Path:
    """Where this worker caches modules: a folder the job's user can read, not write."""
    if sandbox.jobs_root is not None:
        return sandbox.jobs_root / "shared" / "modules"
    return settings.data_dir / "modules" / "worker"


def _open(settings: Settings, token: str, path: str, timeout: float):
    url = f"{settings.api_url.rstrip('/')}/api/v1/runtime/modules{path}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    context = (ssl.create_default_context(cafile=settings.api_ca_file)
               if settings.api_ca_file else None)
    try:
        return urllib.request.urlopen(request, timeout=timeout, context=context)
    except urllib.error.HTTPError as exc:
        raise ModulesUnavailable(f"the web service answered {exc.code} {exc.reason} at "
                                 f"{url}") from None
    except OSError as exc:
        raise ModulesUnavailable(f"the web service cannot be reached at {url}: "
                                 f"{exc}") from None


def listed(settings: Settings, token: str, module_type: str) -> list[CachedModule]:
    """The uploaded modules of a type, as the web service has them now (each name, version
    and hash checked: they become paths on the worker)."""
    try:
        with _open(settings, token, f"?type={module_type}", 10.0) as resp:
            items = json.load(resp)["items"]
        modules = [CachedModule(i["name"], i["version"], i["sha256"],
                                i.get("uploaded_at") or "") for i in items]
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ModulesUnavailable(f"the list of modules is unreadable: {exc}") from None
    for module in modules:
        if not (MODULE.pattern.fullmatch(module.name) and VERSION.fullmatch(module.version)
                and _SHA256.fullmatch(module.sha256)):
            raise ModulesUnavailable(f"the list of modules has an invalid entry: {module}")
    return modules


def fetcher(settings: Settings, token: str) -> Fetch:
    """Writes a module's file, by its SHA-256, checked against it."""
    limit = settings.module_max_mb * 1024 * 1024

    def fetch(sha256: str, target: Path) -> None:
        digest, size = hashlib.sha256(), 0
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
        try:
            with _open(settings, token, f"/{sha256}", 60.0) as resp, open(partial, "wb") as out:
                while chunk := resp.read(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise ModulesUnavailable(f"module file {sha256} is larger than "
                                                 "SMA_MODULE_MAX_MB")
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != sha256:
                raise ModulesUnavailable(f"module file {sha256} arrived damaged")
            os.replace(partial, target)
        except OSError as exc:
            raise ModulesUnavailable(f"module file {sha256} could not be fetched: "
                                     f"{exc}") from None
        finally:
            partial.unlink(missing_ok=True)

    return fetch


def prepare(settings: Settings, sandbox: Sandbox, token: str, runbook_type: str
            ) -> tuple[Path | None, str | None]:
    """The folder of the job's modules (PSModulePath's, or $SMA_MODULES), and a warning when
    they could not be brought up to date; (None, None) for other runbook types."""
    if runbook_type not in MODULE_TYPES:
        return None, None
    cache = ModuleCache(cache_root(settings, sandbox),
                        UNPACKED_FACTOR * settings.module_max_mb * 1024 * 1024)
    try:
        modules = listed(settings, token, runbook_type)
        fetch = fetcher(settings, token)
        if runbook_type == "powershell":
            return cache.powershell(modules, fetch), None
        return cache.bash(modules, fetch), None
    except (ModulesUnavailable, OSError) as exc:
        log.warning("uploaded %s modules not brought up to date: %s", runbook_type, exc)
        warning = (f"The uploaded modules could not be brought up to date on this worker "
                   f"({exc}); the job runs with the ones it had.")
        return _what_there_is(cache, runbook_type), warning


def _what_there_is(cache: ModuleCache, runbook_type: str) -> Path | None:
    """The set of modules of this type a job of this worker used last, if any."""
    base = cache.root / runbook_type
    sets = [p for p in base.iterdir() if p.is_dir() and p.name != "store"
            ] if base.is_dir() else []
    return max(sets, key=lambda p: p.stat().st_mtime, default=None)
