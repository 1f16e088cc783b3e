"""PowerShell runbooks: `pwsh` runs the host script, which binds the parameters and maps streams.

What the host would otherwise decide for itself is decided here and handed over in
host.json (see `host_settings`): the preference variables the runbook starts with, which
optional streams become records, where a converted SMA workflow is written.

A runbook that defines an SMA `workflow` also gets the edits that make it a PowerShell 7
function (smacommon/scripts/powershell/workflow.py), in a JSON file the host applies; its path
is in SMA_WORKFLOW_EDITS.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from smacommon.scripts.powershell import edits_json, workflow_edits
from smaworker.engines.base import Engine, JobContext

CONTINUE, SILENT = "Continue", "SilentlyContinue"


def host_settings(ctx: JobContext) -> dict[str, Any]:
    """What SmaHost.ps1 runs the job's runbook with."""
    return {
        # global variables of the runbook's runspace, so the modules it calls obey them too
        "preferences": {
            "VerbosePreference": CONTINUE if ctx.log_verbose else SILENT,
            "DebugPreference": CONTINUE if ctx.log_debug else SILENT,
            "ProgressPreference": CONTINUE if ctx.log_progress else SILENT,
            "InformationPreference": CONTINUE,  # Write-Information is output, as Write-Host
            "WarningPreference": CONTINUE,
            "ErrorActionPreference": CONTINUE,
        },
        # the optional streams written as records even when the runbook asks for more
        "streams": {"Verbose": ctx.log_verbose, "Debug": ctx.log_debug,
                    "Progress": ctx.log_progress},
        # an SMA workflow, converted to a function, runs from this file (a script, so that
        # its #Requires holds)
        "workflow_path": str(ctx.workdir / "runbook.workflow.ps1"),
    }


class PowerShellEngine(Engine):
    name = "powershell"
    suffix = ".ps1"
    executable = "pwsh"
    runtime = ("SmaHost.ps1", "SmaHostRun.ps1", "SmaRunbook")

    def command(self, ctx: JobContext) -> tuple[list[str], dict[str, str]]:
        parameters_path = ctx.workdir / "parameters.json"
        parameters_path.write_text(json.dumps(ctx.parameters, default=str, ensure_ascii=False),
                                   encoding="utf-8")
        settings_path = ctx.workdir / "host.json"
        settings_path.write_text(json.dumps(host_settings(ctx)), encoding="utf-8")
        argv = [shutil.which(self.executable) or self.executable,
                "-NoLogo", "-NoProfile", "-NonInteractive"]
        if os.name == "nt":  # execution policy exists only on Windows
            argv += ["-ExecutionPolicy", "Bypass"]
        argv += ["-File", str(ctx.runtime_dir / "SmaHost.ps1"),
                 "-ScriptPath", str(ctx.script_path),
                 "-ParametersPath", str(parameters_path),
                 "-SettingsPath", str(settings_path)]
        # sma's runtime module, the uploaded modules (<Name>/<Version>/), then the host's
        paths = (str(ctx.runtime_dir), str(ctx.modules or ""), ctx.env.get("PSModulePath"))
        env = {
            "PSModulePath": os.pathsep.join(p for p in paths if p),
            "SMA_LOG_VERBOSE": "1" if ctx.log_verbose else "0",
            "SMA_LOG_PROGRESS": "1" if ctx.log_progress else "0",
            "SMA_LOG_DEBUG": "1" if ctx.log_debug else "0",
            "POWERSHELL_TELEMETRY_OPTOUT": "1",
            "POWERSHELL_UPDATECHECK": "Off",
            "DOTNET_CLI_TELEMETRY_OPTOUT": "1",
        }
        # the bytes the host reads (read_text would turn \r\n into \n and move every offset)
        edits = workflow_edits(ctx.script_path.read_bytes().decode("utf-8", errors="replace"))
        if edits:
            edits_path = ctx.workdir / "workflow-edits.json"
            edits_path.write_text(edits_json(edits), encoding="utf-8")
            env["SMA_WORKFLOW_EDITS"] = str(edits_path)
        return argv, env
