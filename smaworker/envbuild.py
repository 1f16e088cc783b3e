"""Builds one runbook environment into a staging folder: `uv venv` and `uv pip install` (or
`python -m venv` and the worker's pip, where uv is unavailable), from the indexes sma's
settings name.

Only wheels are installed: building a source distribution runs the package's own code,
and the build runs as the worker (root). The pinned set is complete, so nothing is resolved
(`--no-deps`). Bytecode is compiled here, since the job user cannot write `__pycache__`
folders later, by an interpreter that reads no `.pth` file (`-S`): a package's code never
runs as the worker. Every file is then made readable by all, writable by the worker alone.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import stat
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

from smacommon.process import tied_to_parent
from smacommon.settings import Settings

Progress = Callable[[str], None]
# called about once a second while a build or a wait goes on; it raises to abandon them
KeepAlive = Callable[[], None]

BUILD_TIMEOUT_SECONDS = 1800.0
_TAIL_LINES = 12
_MAX_REASON = 2000
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class BuildError(Exception):
    """The environment could not be built; the message says why, for the job's Error stream."""


def find_uv() -> str | None:
    """The uv binary sma depends on, None where it is not installed."""
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        return None


def _split(value: str) -> list[str]:
    return [part for part in re.split(r"[\s,]+", value) if part]


def index_options(settings: Settings) -> list[str]:
    """uv's and pip's options for SMA_PIP_INDEX_URL, SMA_PIP_EXTRA_INDEX_URL, SMA_PIP_FIND_LINKS."""
    options = ["--index-url", settings.pip_index_url] if settings.pip_index_url else []
    for url in _split(settings.pip_extra_index_url):
        options += ["--extra-index-url", url]
    for link in _split(settings.pip_find_links):
        options += ["--find-links", link]
    return options


def build(env: Path, pinned: list[str], python: str, *, uv: str | None, indexes: list[str],
          cache: Path, on_line: Progress, keep_alive: KeepAlive,
          private_indexes: list[str] = ()) -> None:
    """Make the environment `env` (a new path) for `python` with exactly `pinned` in it.

    `private_indexes` (sma's index of uploaded modules, a job's token in its URL) go through
    the tools' environment, never their command line, which every local user can read; uv
    asks them before the other indexes, so an uploaded module wins over a public package of
    the same name."""
    deadline = time.monotonic() + BUILD_TIMEOUT_SECONDS
    requirements = env.parent / "requirements.txt"
    requirements.write_text("".join(f"{p}\n" for p in pinned), encoding="utf-8")
    # the worker's secrets stay out of the tools' environment
    base = {k: v for k, v in os.environ.items() if not k.startswith("SMA_")}

    def run(argv: list[str], extra: dict[str, str], what: str) -> None:
        _run(argv, {**base, **extra}, env.parent, on_line, keep_alive, deadline, what)

    if uv is not None:
        extra = {"UV_CACHE_DIR": str(cache / "uv"), "UV_PYTHON_DOWNLOADS": "never",
                 "UV_NO_PROGRESS": "1", "NO_COLOR": "1"}
        if private_indexes:
            extra["UV_INDEX"] = " ".join(private_indexes)
        run([uv, "venv", "--no-config", "--quiet", "--relocatable", "--python", python,
             str(env)], extra, "uv venv")
        run([uv, "pip", "install", "--no-config", "--python", str(env / "bin" / "python"),
             "--no-deps", "--no-build", *indexes, "-r", str(requirements)], extra,
            "uv pip install")
    else:
        if find_spec("pip") is None:
            raise BuildError("Neither uv nor pip is installed with the worker, so it cannot "
                             "build the runbook's environment; install sma with its "
                             "dependencies (uv).")
        run([python, "-m", "venv", "--without-pip", str(env)], {}, "python -m venv")
        pip_env = {"PIP_NO_COLOR": "1", "PIP_CONFIG_FILE": os.devnull}
        if private_indexes:  # pip reads extra indexes from its environment only when the
            # command line names none: all of them go there
            extras = [indexes[i + 1] for i, option in enumerate(indexes)
                      if option == "--extra-index-url"]
            indexes = [option for i, option in enumerate(indexes)
                       if option != "--extra-index-url"
                       and (i == 0 or indexes[i - 1] != "--extra-index-url")]
            pip_env["PIP_EXTRA_INDEX_URL"] = " ".join([*private_indexes, *extras])
        run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install",
             "--no-deps", "--only-binary", ":all:", "--no-compile", "--no-input",
             "--disable-pip-version-check", "--progress-bar", "off",
             "--cache-dir", str(cache / "pip"), *indexes, "-r", str(requirements)],
            pip_env, "pip install")
        _fix_scripts(env)
    for site in sorted(env.glob("lib/python*/site-packages")):
        # compile errors (a file of another Python's syntax) are the package's, as with pip
        _run([str(env / "bin" / "python"), "-I", "-S", "-m", "compileall", "-q", "-j", "0",
              str(site)], base, env.parent, lambda line: None, keep_alive, deadline,
             "compileall", check=False)
    seal(env)


def _fix_scripts(env: Path) -> None:
    """pip writes the staging folder into its scripts' `#!` lines: point them at `bin/` of
    wherever the environment is (uv's `--relocatable` does the same)."""
    staged = f"#!{env / 'bin' / 'python'}".encode()
    for script in (env / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(staged + b"\n"):
            script.write_bytes(b"#!/bin/sh\n'''exec' \"$(dirname -- \"$(realpath -- \"$0\")\")"
                               b"\"/python \"$0\" \"$@\"\n' '''\n" + data[len(staged) + 1:])


def seal(env: Path) -> None:
    """Folders and files readable (and runnable, where they were) by all, writable by the
    worker alone."""
    for folder, _, files in os.walk(env):
        os.chmod(folder, 0o755)
        for name in files:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode):
                os.chmod(path, 0o755 if mode & 0o111 else 0o644)


def _run(argv: list[str], env: dict[str, str], cwd: Path, on_line: Progress,
         keep_alive: KeepAlive, deadline: float, what: str, check: bool = True) -> None:
    """Run one step, each line it writes to `on_line`; BuildError with the end of what it
    wrote when it fails."""
    argv, options = tied_to_parent(argv)
    try:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, **options)
    except OSError as exc:
        raise BuildError(f"Building the runbook's environment failed: {what} could not "
                         f"start: {exc}") from None
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    rest = b""
    fd = proc.stdout.fileno()
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                data = os.read(fd, 65536) if sel.select(1.0) else None
                if data is not None:
                    lines = (rest + data).split(b"\n")
                    rest = lines.pop() if data else b""
                    for raw in lines:
                        line = _ANSI.sub("", raw.decode("utf-8", "replace")).rstrip()
                        if line.strip():
                            tail.append(line)
                            on_line(line)
                    if not data:
                        break
                keep_alive()
                if time.monotonic() > deadline:
                    raise BuildError(f"Building the runbook's environment took longer than "
                                     f"{BUILD_TIMEOUT_SECONDS:g} s; {what} was stopped.")
        code = proc.wait(timeout=30)
    except BaseException:
        _kill(proc)
        raise
    finally:
        proc.stdout.close()
    if code != 0 and check:
        said = "\n".join(tail).strip() or f"{what} exited with code {code}"
        if len(said) > _MAX_REASON:
            said = "…" + said[-_MAX_REASON:]
        raise BuildError(f"Building the runbook's environment failed ({what}):\n{said}")


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=30)
