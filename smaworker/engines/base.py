"""The one small interface every runbook engine implements.

An engine turns a prepared job (script file written, parameters validated, base
environment built) into a command line and the extra environment; the worker does the
rest (process group, pipes, capture, limits) the same way for every language.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"


@dataclass
class JobContext:
    """What an engine needs to know about the job it launches."""

    job_id: str
    workdir: Path                      # private temporary folder, removed after the job
    script_path: Path                  # the content, written with the engine's suffix
    parameters: dict[str, Any]         # validated values the start gave
    declared: list[dict[str, Any]]     # declarations: name, type, mandatory, default
    arguments: list[str] = field(default_factory=list)  # positional, in order
    log_verbose: bool = False
    log_progress: bool = False
    log_debug: bool = False
    env: dict[str, str] = field(default_factory=dict)  # base environment, already clean
    runtime_dir: Path = RUNTIME_DIR    # sma's runbook-side helpers, as the job can read them
    python: str = ""                   # the interpreter of Python runbooks and helpers
    # a runbook with requirements: its own environment (smaworker.environments), else None
    environment: Path | None = None
    # uploaded modules (smaworker.jobmodules): PowerShell's module folder, or Bash's
    # $SMA_MODULES; None for other runbook types or when there is none
    modules: Path | None = None


def ordered(values: dict[str, Any], declared: list[dict[str, Any]]) -> dict[str, Any]:
    """`values` in the order the parameters are declared (then any others)."""
    order = {d["name"]: i for i, d in enumerate(declared)}
    return dict(sorted(values.items(), key=lambda kv: order.get(kv[0], len(order))))


class Engine(ABC):
    """Base class: subclasses set `name`, `suffix` and implement `command`."""

    name: str = ""
    suffix: str = ""
    executable: str = ""
    # its process drops root itself when SMA_RUN_AS="uid:gid" is set (no setpriv to exec)
    drops_privileges: bool = False
    # its runtime sets the job's resource limits from SMA_RLIMITS before the runbook runs
    # (else the worker starts it through prlimit: one exec more)
    applies_limits: bool = False
    # its runbook-side helpers: the entries of smaworker/runtime it runs or imports
    runtime: tuple[str, ...] = ()

    def available(self) -> bool:
        """Whether this host can run the engine's runbooks."""
        return bool(self.executable and shutil.which(self.executable))

    @abstractmethod
    def command(self, ctx: JobContext) -> tuple[list[str], dict[str, str]]:
        """The argv to run and the environment variables to add to `ctx.env`."""
