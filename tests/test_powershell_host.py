"""The PowerShell host's run of a runbook: what the worker hands it (checked here), and under
pwsh the runspace it runs in (clean scope, #Requires, exit codes, preferences modules obey,
cmdlet progress), checkpoints, secrets, binding errors and asset calls over TLS."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from smaworker.engines.base import JobContext
from smaworker.engines.powershell import host_settings
from tests.test_powershell import needs_pwsh, run_host

# --- what the worker hands the host (no pwsh needed) -----------------------------------------


def _context(tmp_path: Path, **flags: bool) -> JobContext:
    return JobContext(job_id="00000000-0000-0000-0000-000000000002", workdir=tmp_path,
                      script_path=tmp_path / "runbook.ps1", parameters={}, declared=[],
                      **flags)


@pytest.mark.parametrize("flags", [
    {}, {"log_verbose": True}, {"log_debug": True}, {"log_progress": True},
    {"log_verbose": True, "log_debug": True, "log_progress": True},
])
def test_preferences_and_kept_streams_follow_the_log_settings(tmp_path: Path,
                                                              flags: dict) -> None:
    settings = host_settings(_context(tmp_path, **flags))

    def pref(flag: str) -> str:
        return "Continue" if flags.get(flag) else "SilentlyContinue"

    assert settings["preferences"] == {
        "VerbosePreference": pref("log_verbose"), "DebugPreference": pref("log_debug"),
        "ProgressPreference": pref("log_progress"), "InformationPreference": "Continue",
        "WarningPreference": "Continue", "ErrorActionPreference": "Continue"}
    assert settings["streams"] == {"Verbose": bool(flags.get("log_verbose")),
                                   "Debug": bool(flags.get("log_debug")),
                                   "Progress": bool(flags.get("log_progress"))}


def test_a_converted_workflow_is_written_in_the_jobs_own_folder(tmp_path: Path) -> None:
    path = Path(host_settings(_context(tmp_path))["workflow_path"])
    assert path.parent == tmp_path and path.suffix == ".ps1"
    assert path.name != "runbook.ps1"  # the runbook as written stays as it is


# --- the runspace (pwsh) ---------------------------------------------------------------------


@needs_pwsh
def test_runbook_sees_nothing_of_the_host(tmp_path: Path) -> None:
    script = ("'sma ' + ($null -eq $__sma)\n"
              "'functions ' + @(Get-ChildItem function: | Where-Object Name -like '__Sma*').Count\n"
              "'script ' + (Split-Path -Leaf $PSCommandPath)\n"
              "'progress ' + (Get-Command Write-Progress).CommandType\n"
              "$__sma = 'mine'\n"
              "function __SmaFail { 'the runbook own' }\n"
              "__SmaFail\n")
    run = run_host(tmp_path, script)
    assert run.code == 0, run.stderr
    assert run.lines == ["sma True", "functions 0", "script runbook.ps1", "progress Cmdlet",
                         "the runbook own"]


@needs_pwsh
@pytest.mark.parametrize(("requires", "named"), [
    ("#Requires -Version 99", "99"),
    ("#Requires -Modules Sma.NoSuchModule", "Sma.NoSuchModule"),
])
def test_requires_is_honoured(tmp_path: Path, requires: str, named: str) -> None:
    run = run_host(tmp_path, f"{requires}\n'ran'\n")
    assert run.code == 1
    assert run.lines == []
    assert "runbook.ps1" in run.stderr and named in run.stderr


@needs_pwsh
@pytest.mark.parametrize(("script", "code", "lines"), [
    ("'leaving'\nexit 3\n'not here'\n", 3, ["leaving"]),
    # its modules loaded before the run cannot keep its `exit` from counting
    ("#Requires -Modules Microsoft.PowerShell.Utility\nexit 4\n", 4, []),
    ("function Go { param([int]$N) \"go $N\"; exit $N }\n", 5, ["go 5"]),
    # a native command's exit code is not the runbook's: it ends by itself
    ("& /bin/sh -c 'exit 6'\n\"native $LASTEXITCODE\"\n", 0, ["native 6"]),
    ("'ends'\n", 0, ["ends"]),
])
def test_exit_codes(tmp_path: Path, script: str, code: int, lines: list[str]) -> None:
    run = run_host(tmp_path, script, {"N": 5} if "function Go" in script else {})
    assert run.code == code, run.stderr
    assert run.lines == lines


@needs_pwsh
def test_a_workflow_runs_from_its_converted_file(tmp_path: Path) -> None:
    script = ("workflow Show-Place\n{\n    param([string]$Name)\n"
              "    \"$Name from $(Split-Path -Leaf $PSCommandPath)\"\n"
              "    throw 'stop here'\n}\n")
    run = run_host(tmp_path, script, {"Name": "wf"})
    assert run.code == 1
    assert run.lines == ["wf from runbook.workflow.ps1"]
    assert "stop here" in run.stderr and "runbook.workflow.ps1: line 5" in run.stderr
    assert "SmaHost" not in run.stderr and "SmaRunbook" not in run.stderr


MODULE = ("New-Module -Name Helper -ScriptBlock {\n"
          "    function Test-Helper { [CmdletBinding()] param()\n"
          "        Write-Verbose 'module verbose'; Write-Debug 'module debug'; 'helped' }\n"
          "} | Import-Module\n"
          "Test-Helper\n")


@needs_pwsh
def test_modules_obey_the_log_settings(tmp_path: Path) -> None:
    run = run_host(tmp_path, MODULE, log_verbose=True, log_debug=True)
    assert run.code == 0, run.stderr
    assert run.records == [{"stream": "Verbose", "text": "module verbose"},
                           {"stream": "Debug", "text": "module debug"}]
    assert run.lines == ["helped"]
    quiet = run_host(tmp_path, MODULE)
    assert quiet.records == [] and quiet.lines == ["helped"]


# a compiled cmdlet's progress, which no redirection carries
CMDLET_PROGRESS = """Add-Type -TypeDefinition @'
using System.Management.Automation;
[Cmdlet("Write", "TestProgress")]
public class WriteTestProgress : PSCmdlet {
    protected override void ProcessRecord() {
        var record = new ProgressRecord(1, "Compiled", "half way");
        record.PercentComplete = 50;
        WriteProgress(record);
    }
}
'@ -PassThru | Select-Object -First 1 | ForEach-Object { Import-Module $_.Assembly }
'before'
Write-TestProgress
'after'
"""


@needs_pwsh
def test_a_cmdlets_progress_is_a_progress_record_in_its_place(tmp_path: Path) -> None:
    run = run_host(tmp_path, CMDLET_PROGRESS, log_progress=True)
    assert run.code == 0, run.stderr
    progress = {"stream": "Progress", "text": "Compiled: half way (50%)",
                "value": {"activity": "Compiled", "status": "half way", "percent": 50}}
    assert run.order == [("text", "before\n"), ("record", progress), ("text", "after\n")]
    quiet = run_host(tmp_path, CMDLET_PROGRESS)
    assert quiet.code == 0, quiet.stderr
    assert quiet.records == [] and quiet.lines == ["before", "after"]


@needs_pwsh
def test_completed_progress(tmp_path: Path) -> None:
    run = run_host(tmp_path, "Write-Progress -Activity 'Copy' -Completed\n", log_progress=True)
    assert run.code == 0, run.stderr
    assert run.stream("Progress") == [{
        "stream": "Progress", "text": "Copy: Completed (100%)",
        "value": {"activity": "Copy", "status": "Completed", "percent": 100}}]


@needs_pwsh
def test_a_value_too_large_for_its_parameter_is_a_clear_error(tmp_path: Path) -> None:
    run = run_host(tmp_path, "param([int]$Count)\n$Count\n", {"Count": 3_000_000_000})
    assert run.code == 1
    assert "sma: the runbook's parameters cannot be bound" in run.stderr
    assert "Count" in run.stderr and "Int32" in run.stderr
    assert run.lines == []


# --- checkpoints (pwsh) ----------------------------------------------------------------------

SHOW_CHECKPOINT = ("$c = Get-SmaCheckpoint\n"
                   "$c.GetType().Name\n"
                   "$c['When'].GetType().Name + ' ' + $c['When']\n"
                   "$c['One'].GetType().Name + ' ' + $c['One'].Count\n"
                   "$c['N'].GetType().Name\n")
SHOWN = ["Hashtable", "String 2024-05-01T10:00:00Z", "Object[] 1", "Int64"]


@needs_pwsh
def test_checkpoint_data_keeps_its_shape_in_the_same_run(tmp_path: Path) -> None:
    script = ("Checkpoint-Workflow -Data @{ When = '2024-05-01T10:00:00Z'; One = @(7); N = 2 }\n"
              + SHOW_CHECKPOINT)
    run = run_host(tmp_path, script)
    assert run.code == 0, run.stderr
    assert run.lines == SHOWN


@needs_pwsh
def test_checkpoint_data_keeps_its_shape_in_a_resumed_run(tmp_path: Path) -> None:
    saved = tmp_path / "checkpoint.json"
    saved.write_text(json.dumps({"When": "2024-05-01T10:00:00Z", "One": [7], "N": 2}),
                     encoding="utf-8")
    run = run_host(tmp_path, SHOW_CHECKPOINT, env={"SMA_CHECKPOINT_FILE": str(saved)})
    assert run.code == 0, run.stderr
    assert run.lines == SHOWN
    saved.write_text("[7]", encoding="utf-8")
    run = run_host(tmp_path, "$c = Get-SmaCheckpoint\n($c -is [array]).ToString() + ' ' + "
                             "$c.Count\n", env={"SMA_CHECKPOINT_FILE": str(saved)})
    assert run.lines == ["True 1"]


@needs_pwsh
def test_suspend_workflow_outside_a_job_is_an_error(tmp_path: Path) -> None:
    run = run_host(tmp_path, "Suspend-Workflow\n'after'\n", env={"SMA_RECORD_FD": ""})
    assert run.code == 1
    assert "Suspend-Workflow works only in an sma job" in run.stderr


# --- assets over TLS (pwsh) ------------------------------------------------------------------


class _Runtime(BaseHTTPRequestHandler):
    """The two runtime endpoints the runbook calls; what it sent is kept in `seen`."""

    seen: list[dict] = []

    def _answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.seen.append({"method": "GET", "path": self.path,
                          "auth": self.headers["Authorization"]})
        self._answer({"name": "Greeting", "is_encrypted": False, "value": {"text": "hi"}})

    def do_PUT(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append({"method": "PUT", "path": self.path,
                          "type": self.headers["Content-Type"], "body": body})
        self._answer({"name": "Greeting", "is_encrypted": False, "value": "x"})

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def https_runtime(tmp_path: Path):
    """A runtime API over HTTPS with a self-signed certificate (as `sma up --tls-cert`)."""
    from tests.test_tls import _self_signed

    (tmp_path / "server").mkdir()
    cert, key = _self_signed(tmp_path / "server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    _Runtime.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Runtime)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


ASSETS = ("$v = Get-AutomationVariable -Name Greeting\n"
          "'got ' + $v.text\n"
          "Set-AutomationVariable -Name Greeting -Value 'zoë'\n"
          "'set'\n")


@needs_pwsh
def test_asset_calls_trust_the_ca_file_and_send_utf8(tmp_path: Path, https_runtime) -> None:
    url, cert = https_runtime
    env = {"SMA_API_URL": url, "SMA_JOB_TOKEN": "job-token", "SMA_API_CA_FILE": str(cert)}
    run = run_host(tmp_path, ASSETS, env=env)
    assert run.code == 0, run.stderr
    assert run.lines == ["got hi", "set"]
    get, put = _Runtime.seen
    assert (get["path"], get["auth"]) == ("/api/v1/runtime/variables/Greeting",
                                          "Bearer job-token")
    assert put["type"] == "application/json; charset=utf-8"
    assert json.loads(put["body"].decode("utf-8")) == {"value": "zoë"}


@needs_pwsh
def test_asset_calls_refuse_a_certificate_the_ca_file_did_not_sign(tmp_path: Path,
                                                                    https_runtime) -> None:
    from tests.test_tls import _self_signed

    url, _cert = https_runtime
    (tmp_path / "other").mkdir()
    other, _key = _self_signed(tmp_path / "other")
    env = {"SMA_API_URL": url, "SMA_JOB_TOKEN": "job-token", "SMA_API_CA_FILE": str(other)}
    run = run_host(tmp_path, ASSETS, env=env)
    assert run.code == 1
    assert f"AutomationAssetError: the sma service at {url} cannot be reached" in run.stderr
    assert run.lines == [] and _Runtime.seen == []  # never sent, never skipped


# --- in a job (pwsh, a real worker) ----------------------------------------------------------


@needs_pwsh
@pytest.mark.e2e
def test_credential_parameters_take_asset_names_and_defaults(api, worker) -> None:
    api.post("/api/v1/credentials", json={"name": "Db", "username": "app",
                                          "password": "hunter2-is-long"})
    script = ("param([PSCredential]$Given, [PSCredential]$Fallback = 'Db')\n"
              "\"given $($Given.UserName) $($Given.GetNetworkCredential().Password)\"\n"
              "\"fallback $($Fallback.UserName)\"\n")
    job = api.run(script, {"Given": "Db"}, runbook_type="powershell", timeout=120)
    assert job["status"] == "Completed", job
    lines = api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True).splitlines()
    assert lines == ["given app ***", "fallback app"]
    workflow = ("workflow Use-Db\n{\n    param([Parameter(Mandatory)][PSCredential]$Cred)\n"
                "    \"wf $($Cred.UserName)\"\n}\n")
    job = api.run(workflow, {"Cred": "Db"}, runbook_type="powershell", timeout=120)
    assert job["status"] == "Completed", job
    assert api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True) == "wf app\n"


SUSPENDS = ("$state = Get-SmaCheckpoint\n"
            "if ($state.Stage -ne 'waited') {\n"
            "    'before'\n"
            "    Suspend-Workflow -Data @{ Stage = 'waited' }\n"
            "    'not suspended'\n"
            "}\n"
            "\"after $($state.Stage)\"\n")


@needs_pwsh
@pytest.mark.e2e
def test_suspend_workflow_suspends_until_resumed(api, worker) -> None:
    rb = api.create_runbook(content=SUSPENDS, runbook_type="powershell")
    job = api.start(rb["name"])
    suspended = api.wait(job["id"], timeout=120)
    assert suspended["status"] == "Suspended", suspended
    assert suspended["has_checkpoint"] is True
    assert api.post(f"/api/v1/jobs/{job['id']}/resume").status_code == 202
    done = api.wait(job["id"], timeout=120)
    assert done["status"] == "Completed", done
    lines = [line for line in
             api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True).splitlines()
             if not line.startswith("--- Attempt")]
    assert lines == ["before", "after waited"]
