"""Bash runbooks: positional arguments arrive as $1 $2 ..., in order; named parameters as
environment variables and, after the positional ones, `--name value` arguments (secret ones
only as environment variables)."""

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


# The kernel refuses to start a process with one argument or environment string over 128 KiB
# (MAX_ARG_STRLEN), or with about 2 MiB of them in all, and each value is both. A larger value
# (a webhook's WEBHOOKDATA may be 512 KiB) goes through a file instead, which sma.sh reads
# back into the variable and the --name argument before the runbook runs; it is not exported
# to the runbook's own commands, which the same limit would stop.
LARGE_VALUE_BYTES = 32 * 1024


class BashEngine(Engine):
    name = "bash"
    suffix = ".sh"
    executable = "bash"
    applies_limits = True  # sma.sh, through BASH_ENV
    runtime = ("sma.sh", "sma_assets_cli.py", "smarunbook")  # the asset verbs run Python

    def command(self, ctx: JobContext) -> tuple[list[str], dict[str, str]]:
        values = {d["name"]: d["default"] for d in ctx.declared if "default" in d}
        values.update(ctx.parameters)
        values = ordered(values, ctx.declared)
        argv = ["bash", "--noprofile", "--norc", str(ctx.script_path), *ctx.arguments]
        env = {"BASH_ENV": str(ctx.runtime_dir / "sma.sh"), "SMA_RUNTIME": str(ctx.runtime_dir),
               "SMA_PYTHON": ctx.python or sys.executable}
        if ctx.modules is not None:  # the uploaded libraries: source "$SMA_MODULES/name.sh"
            env["SMA_MODULES"] = str(ctx.modules)
        secret = {d["name"] for d in ctx.declared if d.get("secret")}
        large = []
        for name, value in values.items():
            text = shell_value(value)
            if len(text) > LARGE_VALUE_BYTES // 4 and len(text.encode()) > LARGE_VALUE_BYTES:
                folder = ctx.workdir / "parameters"
                folder.mkdir(exist_ok=True)
                (folder / name).write_text(text, encoding="utf-8")
                large.append(name)
                text = ""  # sma.sh puts the value here
            else:
                env[name] = text
            if name not in secret:  # any local user may read a process's arguments
                argv += [f"--{name}", text]
        if large:
            env["SMA_PARAMETER_DIR"] = str(ctx.workdir / "parameters")
            env["SMA_PARAMETER_FILES"] = " ".join(large)
            env["SMA_ARGUMENT_COUNT"] = str(len(ctx.arguments))  # sma.sh skips them
        return argv, env
