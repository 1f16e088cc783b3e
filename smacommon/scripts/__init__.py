"""Checks runbook content before any worker sees it, and reads its declared parameters.

A runbook type is a key of ANALYZERS: the module whose `analyze(content)` checks that
language. Each type has an engine of the same name in smaworker/engines (a test holds them
together); see docs/architecture.md, "Adding a runbook language".
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from smacommon.errors import ValidationFailed

# imported on first use: PowerShell's analyzer loads a tree-sitter grammar
ANALYZERS = {
    "python": "smacommon.scripts.python",
    "bash": "smacommon.scripts.bash",
    "powershell": "smacommon.scripts.powershell",
}
RUNBOOK_TYPES = tuple(ANALYZERS)


def analyze(runbook_type: str, content: str) -> list[dict[str, Any]]:
    """Parse `content`; raise ScriptError naming line and column, else return its parameters."""
    module = ANALYZERS.get(runbook_type)
    if module is None:
        raise ValidationFailed(
            f"Unknown runbook type {runbook_type!r}; use one of {', '.join(RUNBOOK_TYPES)}.",
            {"runbook_type": ["Unknown runbook type."]})
    return import_module(module).analyze(content)


def arguments_refusal(runbook_type: str, content: str) -> str | None:
    """Why a runbook takes no positional arguments, None when it does: its analyzer's
    `arguments_refusal(content)`; a language without one takes them (as Bash does)."""
    module = ANALYZERS.get(runbook_type)
    if module is None:
        return None
    says = getattr(import_module(module), "arguments_refusal", None)
    return says(content) if says is not None else None
