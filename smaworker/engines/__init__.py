"""Runbook engines by runbook type (the types of smacommon.scripts.ANALYZERS); a new
language is one module here, see docs/architecture.md."""

from __future__ import annotations

from smaworker.engines.base import Engine, JobContext
from smaworker.engines.bash import BashEngine
from smaworker.engines.powershell import PowerShellEngine
from smaworker.engines.python import PythonEngine

ENGINES: dict[str, Engine] = {
    e.name: e for e in (PythonEngine(), BashEngine(), PowerShellEngine())
}


def get_engine(runbook_type: str) -> Engine:
    return ENGINES[runbook_type]


def available_engines() -> list[str]:
    """The runbook types this host can run."""
    return [name for name, engine in ENGINES.items() if engine.available()]


__all__ = ["ENGINES", "Engine", "JobContext", "available_engines", "get_engine"]
