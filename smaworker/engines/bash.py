"""Bash runbooks: parameters arrive as environment variables and `--name value` arguments."""

from __future__ import annotations

import json
import sys
from typing import Any

from smaworker.engines.base import Engine, JobContext, ordered


def shell_value(value: Any) -> str:
    """How a typed value reads in a shell: strings as they are, booleans lower-case, else JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return json.dumps(value)


class BashEngine(Engine):
    name = "bash"
    suffix = ".sh"
    executable = "bash"
    applies_limits = True  # sma.sh, through BASH_ENV

    def command(self, ctx: JobContext) -> tuple[list[str], dict[str, str]]:
        values = {d["name"]: d["default"] for d in ctx.declared if "default" in d}
        values.update(ctx.parameters)
        values = ordered(values, ctx.declared)
        argv = ["bash", "--noprofile", "--norc", str(ctx.script_path)]
        env = {"BASH_ENV": str(ctx.runtime_dir / "sma.sh"), "SMA_RUNTIME": str(ctx.runtime_dir),
               "SMA_PYTHON": ctx.python or sys.executable}
        for name, value in values.items():
            text = shell_value(value)
            argv += [f"--{name}", text]
            env[name] = text
        return argv, env
