"""Checks runbook content before any worker sees it, and reads its declared parameters."""

from __future__ import annotations

from typing import Any

from smacommon.errors import ValidationFailed

RUNBOOK_TYPES = ("python", "bash", "powershell")


def analyze(runbook_type: str, content: str) -> list[dict[str, Any]]:
    """Parse `content`; raise ScriptError naming line and column, else return its parameters."""
    if runbook_type == "python":
        from smacommon.scripts.python import analyze as run
    elif runbook_type == "bash":
        from smacommon.scripts.bash import analyze as run
    elif runbook_type == "powershell":
        from smacommon.scripts.powershell import analyze as run
    else:
        raise ValidationFailed(
            f"Unknown runbook type {runbook_type!r}; use one of {', '.join(RUNBOOK_TYPES)}.",
            {"runbook_type": ["Unknown runbook type."]})
    return run(content)
