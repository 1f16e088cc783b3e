"""Python runbooks, run by the worker's own interpreter (or SMA_PYTHON), or by their own
environment's for a runbook with requirements, through a small host (sma's runtime folder
is on its path: `smarunbook` and `automationassets` import in either)."""

from __future__ import annotations

import marshal
import os
import sys

from smacommon.scripts.python import calls_main
from smaworker.engines.base import Engine, JobContext, ordered


class PythonEngine(Engine):
    name = "python"
    suffix = ".py"
    drops_privileges = True  # sma_python_host.py, first thing
    applies_limits = True  # sma_python_host.py, before it drops root
    # sma_zygote.py: the warm hosts' zygote (smaworker/zygote.py), sma_mounts.py its mounts
    runtime = ("sma_python_host.py", "sma_zygote.py", "sma_mounts.py", "smarunbook",
               "automationassets.py")

    def __init__(self, interpreter: str | None = None) -> None:
        self.executable = interpreter or os.environ.get("SMA_PYTHON") or sys.executable

    def available(self) -> bool:
        return os.access(self.executable, os.X_OK)

    def command(self, ctx: JobContext) -> tuple[list[str], dict[str, str]]:
        has_main = calls_main(ctx.script_path.read_text(encoding="utf-8"))
        # marshal: the host reads it with no import (json would cost every job ~5 ms)
        spec_path = ctx.workdir / "parameters.marshal"
        spec_path.write_bytes(marshal.dumps(
            {"parameters": ordered(ctx.parameters, ctx.declared), "has_main": has_main,
             "arguments": list(ctx.arguments)}, 4))
        python, env = ctx.python or self.executable, {"PYTHONUTF8": "1"}
        if ctx.environment is not None:  # its own packages, none of the worker's
            python = str(ctx.environment / "bin" / "python")
            env.update(VIRTUAL_ENV=str(ctx.environment),
                       PATH=f"{ctx.environment / 'bin'}{os.pathsep}{ctx.env.get('PATH', '')}")
        # -I: ignore PYTHON* variables and the user site; -u: unbuffered, so lines arrive live
        argv = [python, "-I", "-u", str(ctx.runtime_dir / "sma_python_host.py"),
                str(ctx.script_path), str(spec_path)]
        return argv, env
