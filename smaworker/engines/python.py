"""Python runbooks, run by the worker's own interpreter (or SMA_PYTHON) through a small host."""

from __future__ import annotations

import ast
import marshal
import os
import sys

from smaworker.engines.base import Engine, JobContext, ordered


class PythonEngine(Engine):
    name = "python"
    suffix = ".py"
    drops_privileges = True  # sma_python_host.py, first thing
    applies_limits = True  # sma_python_host.py, before it drops root

    def __init__(self, interpreter: str | None = None) -> None:
        self.executable = interpreter or os.environ.get("SMA_PYTHON") or sys.executable

    def available(self) -> bool:
        return os.access(self.executable, os.X_OK)

    def command(self, ctx: JobContext) -> tuple[list[str], dict[str, str]]:
        content = ctx.script_path.read_text(encoding="utf-8")
        try:
            tree = ast.parse(content)
            has_main = any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)
        except SyntaxError:  # a test job of a broken draft: let Python report it
            has_main = False
        # marshal: the host reads it with no import (json would cost every job ~5 ms)
        spec_path = ctx.workdir / "parameters.marshal"
        spec_path.write_bytes(marshal.dumps(
            {"parameters": ordered(ctx.parameters, ctx.declared), "has_main": has_main}, 4))
        # -I: ignore PYTHON* variables and the user site; -u: unbuffered, so lines arrive live
        argv = [ctx.python or self.executable, "-I", "-u",
                str(ctx.runtime_dir / "sma_python_host.py"),
                str(ctx.script_path), str(spec_path)]
        return argv, {"PYTHONUTF8": "1"}
