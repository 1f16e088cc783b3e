"""Resolve a runbook's declared requirements (PEP 723) to the pinned set its jobs install
(the format in smacommon.requirements), with `uv pip compile`, or pip where uv is missing.

Resolution runs on the web host, for the workers: for the Python of the interpreter jobs run
with (`worker_python`) and for this host's platform (workers are assumed to share it). It
never runs a package's code here: source distributions are not built (`--no-build`), so a
package published without a wheel is refused with uv's hint. Requirements reach the resolver
through a file, never a shell, each one checked first: only named requirements (PEP 508) are
taken, no option lines and no direct references (`name @ URL`), which would have this host
read its own files (`file:`), fetch any address of its network, or run git.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from smacommon.errors import RequirementsUnresolvable, ResolverUnavailable
from smacommon.requirements import Requirements, environment_key
from smacommon.settings import Settings, get_settings

log = logging.getLogger(__name__)

RESOLVE_TIMEOUT = 120.0  # seconds; a resolution that takes longer is a 503, not a hung publish
_MESSAGE_CHARS = 2000
_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?")
_probed: dict[str, str | None] = {}


def worker_python(settings: Settings) -> str:
    """The version ("3.11.7") of the interpreter jobs run with: SMA_PYTHON's when it is set
    and runs on this host, else this process's own (web and workers share an image or
    host setup; where they do not, set SMA_PYTHON here as on the workers)."""
    configured = settings.python
    if configured:
        if configured not in _probed:
            _probed[configured] = _probe(configured)
            if _probed[configured] is None:
                log.warning("SMA_PYTHON %s does not run here; requirements are resolved for "
                            "this process's Python %s", configured, platform.python_version())
        if _probed[configured]:
            return _probed[configured]
    return platform.python_version()


def _probe(executable: str) -> str | None:
    try:
        proc = subprocess.run([executable, "-I", "-c",
                               "import platform; print(platform.python_version())"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.match(proc.stdout.strip()) if proc.returncode == 0 else None
    return match.group(0) if match else None


def check_dependencies(dependencies: Iterable[str]) -> list[str]:
    """Each requirement in its normal form; RequirementsUnresolvable names one that is not a
    named PEP 508 requirement (an option line, a URL or path, something unreadable)."""
    lines = []
    for text in dependencies:
        if any(ord(c) < 32 for c in text):
            raise RequirementsUnresolvable(
                f"The requirement {text!r} holds a line break or control character; write "
                "each requirement as its own string of `dependencies`.")
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            hint = (" Options such as --index-url are not taken from a runbook: the service's "
                    "SMA_PIP_INDEX_URL says where packages come from."
                    if text.lstrip().startswith("-") else "")
            raise RequirementsUnresolvable(
                f"{text!r} is not a requirement: {str(exc).splitlines()[0]}.{hint}") from None
        if requirement.url:
            raise RequirementsUnresolvable(
                f"{text!r} is a direct reference (a URL or path): requirements are resolved "
                "by name from the package indexes (SMA_PIP_INDEX_URL, SMA_PIP_FIND_LINKS), so "
                "publishing cannot read the service's files or fetch other addresses. Put "
                f"{requirement.name} on your package index and require it by name.")
        lines.append(str(requirement))
    return lines


def check_requires_python(requires_python: str | None, python_version: str) -> None:
    """RequirementsUnresolvable unless the workers' Python satisfies `requires-python`."""
    if requires_python is None:
        return
    try:
        wanted = SpecifierSet(requires_python)
    except InvalidSpecifier:
        raise RequirementsUnresolvable(
            f"requires-python {requires_python!r} is not a version specifier; write e.g. "
            '">=3.10".') from None
    if not wanted.contains(python_version, prereleases=True):
        raise RequirementsUnresolvable(
            f"The runbook requires Python {requires_python} (requires-python), but jobs run "
            f"with Python {python_version}; change requires-python, or run workers with a "
            "Python that satisfies it (SMA_PYTHON).")


def index_options(settings: Settings, find_links: Sequence[str] = ()) -> list[str]:
    """Where packages come from, as options both uv and pip take: SMA_PIP_INDEX_URL,
    SMA_PIP_EXTRA_INDEX_URL, SMA_PIP_FIND_LINKS and `find_links` (empty: PyPI)."""
    options = ["--index-url", settings.pip_index_url] if settings.pip_index_url else []
    for url in _split(settings.pip_extra_index_url):
        options += ["--extra-index-url", url]
    for link in [*_split(settings.pip_find_links), *find_links]:
        options += ["--find-links", link]
    return options


def _split(value: str) -> list[str]:
    return [part for part in re.split(r"[\s,]+", value) if part]


def resolve(declared: Requirements, python_version: str, *, find_links: Sequence[str] = (),
            settings: Settings | None = None, timeout: float = RESOLVE_TIMEOUT) -> Requirements:
    """The pinned set of `declared` ({"dependencies", "requires_python"}) for jobs running
    Python `python_version`; RequirementsUnresolvable (400) when it cannot be met,
    ResolverUnavailable (503) when the index cannot be used or `timeout` seconds pass."""
    settings = settings or get_settings()
    lines = check_dependencies(declared["dependencies"])
    check_requires_python(declared.get("requires_python"), python_version)
    python = ".".join(python_version.split(".")[:2])
    cache = Path(settings.data_dir) / "cache"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="resolve-", dir=cache) as work:
            source = Path(work) / "requirements.in"
            source.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            options = index_options(settings, find_links)
            uv = _uv_binary()
            if uv is not None:
                pinned = uv_compile(uv, source, python, options, cache / "uv", timeout)
            else:
                pinned = pip_report(source, python, options, cache / "pip", timeout)
    except OSError as exc:
        raise ResolverUnavailable(f"Requirements could not be resolved: {exc}") from None
    return {"dependencies": list(declared["dependencies"]),
            "requires_python": declared.get("requires_python"),
            "pinned": pinned, "python": python, "key": environment_key(pinned, python)}


def _uv_binary() -> str | None:
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        return None


def _environment() -> dict[str, str]:
    """This process's environment (proxies, certificates, HOME for .netrc) without what
    would change how uv or pip resolve: their own variables, an active virtualenv."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("UV_", "PIP_")) and key not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env.update(UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never", NO_COLOR="1")
    return env


def _run(argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, cwd=cwd, env=_environment(), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ResolverUnavailable(
            f"Resolving the requirements took longer than {timeout:g} s: the package "
            "index is slow or unreachable (SMA_PIP_INDEX_URL); try again.") from None


def uv_compile(uv: str, source: Path, python: str, options: list[str], cache: Path,
               timeout: float = RESOLVE_TIMEOUT) -> list[str]:
    """The pinned lines `uv pip compile` resolves the requirements file `source` to."""
    proc = _run([uv, "pip", "compile", "--no-config", "--no-header", "--no-annotate",
                 "--no-build", "--no-progress", "--color", "never", "--no-python-downloads",
                 "--python", sys.executable, "--python-version", python,
                 "--cache-dir", str(cache), *options, str(source)], source.parent, timeout)
    if proc.returncode == 1:  # uv: no version set meets the requirements
        raise RequirementsUnresolvable(
            f"The runbook's requirements cannot be resolved: {message_of(proc.stderr)}")
    if proc.returncode != 0:  # uv: an error on the way (an index that does not answer)
        raise ResolverUnavailable(
            f"The package index could not be used to resolve the requirements (try again, or "
            f"check SMA_PIP_INDEX_URL): {message_of(proc.stderr)}")
    return _pins(line for line in proc.stdout.splitlines()
                 if line.strip() and not line.lstrip().startswith("#"))


def pip_report(source: Path, python: str, options: list[str], cache: Path,
               timeout: float = RESOLVE_TIMEOUT) -> list[str]:
    """pip's resolution where uv is missing: `pip install --dry-run --report` (pip >= 22.2)."""
    import importlib.util

    if importlib.util.find_spec("pip") is None:
        raise ResolverUnavailable("Neither uv nor pip is installed beside the service, so "
                                  "requirements cannot be resolved: pip install uv.")
    proc = _run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                 "--report", "-", "--quiet", "--isolated", "--disable-pip-version-check",
                 "--no-input", "--only-binary", ":all:", "--python-version", python,
                 "--retries", "2", "--timeout", "15", "--cache-dir", str(cache), *options,
                 "-r", str(source)], source.parent, timeout)
    if proc.returncode != 0:
        # pip exits 1 for both; only its retry warnings tell an index that did not answer
        if "Retrying (Retry(" in proc.stderr:
            raise ResolverUnavailable(
                f"The package index could not be used to resolve the requirements (try "
                f"again, or check SMA_PIP_INDEX_URL): {message_of(proc.stderr)}")
        raise RequirementsUnresolvable(
            f"The runbook's requirements cannot be resolved: {message_of(proc.stderr)}")
    try:
        report = json.loads(proc.stdout)
        return _pins(f"{item['metadata']['name']}=={item['metadata']['version']}"
                     for item in report["install"])
    except (ValueError, KeyError, TypeError):
        raise ResolverUnavailable("pip's resolution report could not be read; install uv "
                                  "beside the service (pip install uv).") from None


def _pins(lines: Iterable[str]) -> list[str]:
    """`name==version` lines in sma's form: names normalized (PEP 503), sorted."""
    pins = set()
    for line in lines:
        name, sep, version = line.strip().partition("==")
        if not sep or not name or not version or " " in version:
            raise ResolverUnavailable(f"The resolver answered a line sma cannot read: {line!r}")
        pins.add(f"{canonicalize_name(name)}=={version}")
    return sorted(pins)


def message_of(stderr: str) -> str:
    """The resolver's message on one line, credentials in index URLs masked, kept short."""
    parts: list[str] = []
    for line in (line.strip() for line in stderr.splitlines()):
        line = re.sub(r"^(error|ERROR):\s*", "", line)
        cause = re.match(r"(cause|Caused by):\s*", line)
        if cause and parts:  # uv's chain of causes: "error: A", "  cause: B" -> "A: B"
            parts[-1] += ": " + line[cause.end():]
        elif line:
            parts.append(line)
    text = re.sub(r"(?<=://)[^/\s@]+@", "***@", " ".join(parts))
    if len(text) > _MESSAGE_CHARS:
        text = text[:_MESSAGE_CHARS - 1] + "…"
    return text or "the resolver gave no reason."
