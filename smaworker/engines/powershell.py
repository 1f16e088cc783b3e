"""PowerShell runbooks: `pwsh` runs the host script, which binds the parameters and maps streams."""

from __future__ import annotations

import json
import os
import shutil

from smaworker.engines.base import Engine, JobContext


class PowerShellEngine(Engine):
    name = "powershell"
    suffix = ".ps1"
    executable = "pwsh"

    def command(self, ctx: JobContext) -> tuple[list[str], dict[str, str]]:
        parameters_path = ctx.workdir / "parameters.json"
        parameters_path.write_text(json.dumps(ctx.parameters, default=str, ensure_ascii=False),
                                   encoding="utf-8")
        argv = [shutil.which(self.executable) or self.executable,
                "-NoLogo", "-NoProfile", "-NonInteractive"]
        if os.name == "nt":  # execution policy exists only on Windows
            argv += ["-ExecutionPolicy", "Bypass"]
        argv += ["-File", str(ctx.runtime_dir / "SmaHost.ps1"),
                 "-ScriptPath", str(ctx.script_path),
                 "-ParametersPath", str(parameters_path)]
        module_path = ctx.env.get("PSModulePath")
        env = {
            "PSModulePath": os.pathsep.join(p for p in (str(ctx.runtime_dir), module_path) if p),
            "SMA_LOG_VERBOSE": "1" if ctx.log_verbose else "0",
            "SMA_LOG_PROGRESS": "1" if ctx.log_progress else "0",
            "SMA_LOG_DEBUG": "1" if ctx.log_debug else "0",
            "POWERSHELL_TELEMETRY_OPTOUT": "1",
            "POWERSHELL_UPDATECHECK": "Off",
            "DOTNET_CLI_TELEMETRY_OPTOUT": "1",
        }
        return argv, env
