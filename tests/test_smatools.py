"""SmaTools (smacli/powershell), the PowerShell module operators run against sma: its manifest
and cmdlet declarations are read here; its cmdlets are driven against a real sma under pwsh
(tests marked `pwsh`, which skip where pwsh is absent)."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest

from smacommon.embedded_redis import free_port
from smaworker.engines.base import RUNTIME_DIR
from tests.conftest import ADMIN_TOKEN, ROOT

MODULE_DIR = ROOT / "smacli" / "powershell"
MANIFEST = MODULE_DIR / "SmaTools.psd1"
ROOT_MODULE = MODULE_DIR / "SmaTools.psm1"
PUBLIC = [ROOT_MODULE, *sorted((MODULE_DIR / "Public").glob("*.ps1"))]
PRIVATE = sorted((MODULE_DIR / "Private").glob("*.ps1"))
RUNTIME_MODULE = RUNTIME_DIR / "SmaRunbook" / "SmaRunbook.psm1"
# the module and the files it dot-sources
RUNTIME_FILES = [RUNTIME_MODULE, *sorted((RUNTIME_DIR / "SmaRunbook").glob("*.ps1"))]

# Get-Verb: the Verbs* classes of System.Management.Automation (PowerShell 7)
APPROVED_VERBS = frozenset("""
    Add Clear Close Copy Enter Exit Find Format Get Hide Join Lock Move New Open Optimize Push
    Pop Redo Remove Rename Reset Resize Search Select Set Show Skip Split Step Switch Undo Unlock
    Watch Backup Checkpoint Compare Compress Convert ConvertFrom ConvertTo Dismount Edit Expand
    Export Group Import Initialize Limit Merge Mount Out Publish Restore Save Sync Unpublish
    Update Approve Assert Build Complete Confirm Deny Deploy Disable Enable Install Invoke
    Register Request Restart Resume Start Stop Submit Suspend Uninstall Unregister Wait Debug
    Measure Ping Repair Resolve Test Trace Connect Disconnect Read Receive Send Write Block Grant
    Protect Revoke Unblock Unprotect Use""".split())
READ_ONLY_VERBS = {"Get", "Connect"}  # Connect-Sma changes only the session's settings


def functions(*paths: Path) -> dict[str, str]:
    """The top-level functions of PowerShell files: name -> its text."""
    found: dict[str, str] = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        starts = list(re.finditer(r"^function ([\w-]+) \{$", text, re.M))
        for match, following in zip(starts, [*starts[1:], None], strict=True):
            found[match.group(1)] = text[match.start():following.start() if following else None]
    return found


def parameters(function: str) -> dict[str, str]:
    """A function's param(...) block: parameter name -> its declaration."""
    start = function.index("param(") + len("param(")
    depth, chunk, chunks = 0, "", []
    for char in function[start:]:
        if char == "," and depth == 0:
            chunks.append(chunk)
            chunk = ""
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                chunks.append(chunk)
                break
            depth -= 1
        chunk += char
    return {re.search(r"\$(\w+)\s*(=[^$]*)?$", c.strip()).group(1): c.strip() for c in chunks}


def manifest_list(key: str) -> list[str]:
    text = MANIFEST.read_text(encoding="utf-8")
    block = re.search(rf"^\s*{key}\s*=\s*@\((.*?)\)", text, re.M | re.S)
    return re.findall(r"'([^']*)'", block.group(1))


def manifest_value(key: str) -> str:
    return re.search(rf"^\s*{key}\s*=\s*'([^']*)'", MANIFEST.read_text(encoding="utf-8"),
                     re.M).group(1)


def exported_by_root_module() -> list[str]:
    text = ROOT_MODULE.read_text(encoding="utf-8").split("Export-ModuleMember -Function", 1)[1]
    return re.findall(r"[\w]+-[\w]+", text)


# --- the module's files, read (no pwsh needed) -----------------------------------------------


def test_manifest_exports_exactly_the_public_functions() -> None:
    public, private = functions(*PUBLIC), functions(*PRIVATE)
    exported = manifest_list("FunctionsToExport")
    assert len(exported) == len(set(exported))
    assert set(exported) == set(public) == set(exported_by_root_module())
    assert not set(exported) & set(private)
    for key in ("CmdletsToExport", "VariablesToExport", "AliasesToExport"):
        assert manifest_list(key) == [], key
    assert manifest_value("RootModule") == "SmaTools.psm1"
    assert manifest_value("PowerShellVersion") == "7.2"
    assert manifest_list("CompatiblePSEditions") == ["Core"]
    uuid.UUID(manifest_value("GUID"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert manifest_value("ModuleVersion") == project["project"]["version"]


def test_every_module_file_is_listed_loaded_and_packaged() -> None:
    files = sorted(p.relative_to(MODULE_DIR).as_posix() for p in MODULE_DIR.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    assert sorted(manifest_list("FileList")) == files
    loaded = re.search(r"foreach \(\$part in (.*?)\) \{", ROOT_MODULE.read_text(), re.S).group(1)
    assert sorted(re.findall(r"'([^']+)'", loaded)) == sorted(
        f for f in files if f.endswith(".ps1"))
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["smacli"]
    for name in files:
        assert any(fnmatch.fnmatch(f"powershell/{name}", g) for g in globs), name


def test_cmdlets_use_approved_verbs_and_changes_take_whatif() -> None:
    public = functions(*PUBLIC)
    for name in {**public, **functions(*PRIVATE)}:
        assert name.split("-")[0] in APPROVED_VERBS, name
    for name, text in public.items():
        verb, noun = name.split("-")
        assert noun.startswith("Sma"), name
        assert ".SYNOPSIS" in text, f"{name} has no help"
        changes = verb not in READ_ONLY_VERBS
        assert ("[CmdletBinding(SupportsShouldProcess" in text) is changes, name
        assert ("$PSCmdlet.ShouldProcess(" in text) is changes, name
        assert "ConfirmImpact = 'High'" not in text, name  # SMA's cmdlets never asked


def test_decisions_read_the_status_not_the_message() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in [*PUBLIC, *PRIVATE])
    assert "already exists" not in text
    assert not re.search(r'"\$_"\s*-(not)?(match|like)', text)
    public = functions(*PUBLIC)
    for name in ("Import-SmaRunbook", "Set-SmaVariable", "Set-SmaCredential", "Set-SmaSchedule"):
        assert "(Get-SmaErrorCode $_) -ne 409" in public[name], name
    assert "(Get-SmaErrorCode $_) -ne 404" in public["Set-SmaSchedule"]
    api = functions(*PRIVATE)["Invoke-SmaApi"]
    assert "SkipHttpErrorCheck = $true" in api and "StatusCodeVariable" in api
    assert "ContentType = 'application/json; charset=utf-8'" in api
    assert "[System.Text.Encoding]::UTF8.GetBytes(" in api


def test_module_files_are_ascii_with_no_empty_catch() -> None:
    # ASCII: PSScriptAnalyzer wants a BOM on any other file, and Windows PowerShell tools too
    for path in [*PUBLIC, *PRIVATE, MANIFEST]:
        text = path.read_bytes().decode("ascii")
        assert not re.search(r"catch\s*\{\s*\}", text), path


def test_start_sma_runbook_takes_what_the_runtime_one_takes() -> None:
    """A call written for the runtime's Start-SmaRunbook (inside jobs) binds to SmaTools'."""
    tools = parameters(functions(*PUBLIC)["Start-SmaRunbook"])
    runtime = parameters(functions(*RUNTIME_FILES)["Start-SmaRunbook"])
    assert set(runtime) <= set(tools)
    # and a call an SMA runbook makes of SMA's own one binds inside a job too
    assert {"WebServiceEndpoint", "Port"} <= set(runtime)
    for name, declaration in runtime.items():
        position = re.search(r"Position\s*=\s*(\d+)", declaration)
        if position:
            assert f"Position = {position.group(1)}" in tools[name], name
        for alias in re.findall(r"Alias\('(\w+)'\)", declaration):
            assert f"Alias('{alias}')" in tools[name], name
    # and what SMA's own Start-SmaRunbook takes
    assert {"Name", "Parameters", "WebServiceEndpoint", "Port"} <= set(tools)


def test_readme_and_module_import_the_manifest() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "Import-Module ./smacli/powershell/SmaTools.psd1" in readme
    assert "SmaTools.psm1" not in readme
    assert "docker build --target test -f docker/Dockerfile ." in readme
    assert "Import-Module ./smacli/powershell/SmaTools.psd1" in ROOT_MODULE.read_text()


# --- the cmdlets against a real sma (pwsh) ------------------------------------------------------


def pwsh(tmp_path: Path, script: str, url: str, token: str = ADMIN_TOKEN,
         timeout: float = 120) -> subprocess.CompletedProcess:
    """`script` run by pwsh -File, SmaTools imported through its manifest, SMA_URL and
    SMA_TOKEN set; errors stop it (exit code 1, the message on stderr)."""
    path = tmp_path / f"script-{uuid.uuid4().hex[:6]}.ps1"
    path.write_text(f"$ErrorActionPreference = 'Stop'\nImport-Module '{MANIFEST}'\n{script}",
                    encoding="utf-8")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "POWERSHELL_TELEMETRY_OPTOUT": "1", "POWERSHELL_UPDATECHECK": "Off",
           "DOTNET_CLI_TELEMETRY_OPTOUT": "1", "SMA_URL": url, "SMA_TOKEN": token}
    return subprocess.run(["pwsh", "-NoLogo", "-NoProfile", "-NonInteractive", "-File",
                           str(path)], capture_output=True, text=True, encoding="utf-8",
                          env=env, timeout=timeout, cwd=tmp_path)


@pytest.mark.pwsh
def test_manifest_loads_and_start_sma_runbook_binds_like_the_runtime_one(tmp_path):
    proc = pwsh(tmp_path, (
        f"Test-ModuleManifest -Path '{MANIFEST}' | Out-Null\n"
        "$module = Get-Module SmaTools\n"
        "@($module.ExportedFunctions.Keys) -join ','\n"
        "$module.Version.ToString()\n"
        f"Import-Module '{RUNTIME_MODULE}'\n"
        "$tools = (Get-Command SmaTools\\Start-SmaRunbook).Parameters\n"
        "$runtime = (Get-Command SmaRunbook\\Start-SmaRunbook).Parameters\n"
        "@($runtime.Keys | Where-Object { -not $tools.ContainsKey($_) }).Count\n"
        "(Get-Command SmaTools\\Stop-SmaJob).Parameters.ContainsKey('WhatIf')\n"
        "(Get-Command SmaTools\\Get-SmaJob).Parameters.ContainsKey('WhatIf')\n"),
        f"http://127.0.0.1:{free_port()}")  # nothing is asked of it
    assert proc.returncode == 0, proc.stderr
    names, version, missing, stop_whatif, get_whatif = proc.stdout.splitlines()
    assert set(names.split(",")) == set(manifest_list("FunctionsToExport"))
    assert version == manifest_value("ModuleVersion")
    assert (missing, stop_whatif, get_whatif) == ("0", "True", "False")


def _runbook(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.pwsh
def test_cmdlets_drive_the_api_and_change_what_exists(tmp_path, api, services, worker):
    _runbook(tmp_path, "hello.py", "def main(name: str):\n    print(f'hello {name}')\n")
    proc = pwsh(tmp_path, (
        "$null = Import-SmaRunbook -Path ./hello.py -Publish\n"
        "Start-SmaRunbook -Name hello -Parameters @{ name = 'pwsh' } -Wait\n"
        "$id = Start-SmaRunbook hello @{ name = 'id' }\n"  # positional, as in a job
        "(Get-SmaJob -Id $id).id -eq $id\n"
        "Set-Content -Path ./hello.py -Value \"def main(name: str):`n    print(f'hi {name}')\"\n"
        "(Import-SmaRunbook -Path ./hello.py -Publish).published_version.number\n"
        "Start-SmaRunbook -Name hello -Parameters @{ name = 'again' } -Wait\n"
        "Set-SmaVariable -Name Region -Value 'eu' | Out-Null\n"
        "Set-SmaVariable -Name Region -Value 'us' | Out-Null\n"
        "(Get-SmaVariable -Name Region).value\n"
        "$secret = ConvertTo-SecureString 'first-pw' -AsPlainText -Force\n"
        "Set-SmaCredential -Name Db ([pscredential]::new('ann', $secret)) | Out-Null\n"
        "$secret = ConvertTo-SecureString 'second-pw' -AsPlainText -Force\n"
        "Set-SmaCredential -Name Db ([pscredential]::new('bob', $secret)) | Out-Null\n"
        "Set-SmaSchedule -Name Nightly -Frequency Day -Interval 1 | Out-Null\n"
        "(Set-SmaSchedule -Name Nightly -Interval 2).interval\n"
        "(Set-SmaSchedule -Name Nightly -Frequency Hour -Interval 3).frequency\n"),
        services["api_url"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["hello pwsh", "True", "2", "hi again", "us", "2", "Hour"]
    assert api.get("/api/v1/credentials/Db").get_json()["username"] == "bob"
    schedule = api.get("/api/v1/schedules/Nightly").get_json()
    assert (schedule["frequency"], schedule["interval"]) == ("Hour", 3)


@pytest.mark.pwsh
def test_start_wait_fails_naming_the_status_and_reason(tmp_path, api, services, worker):
    api.create_runbook("broken", content="raise RuntimeError('it broke')\n")
    proc = pwsh(tmp_path, "Start-SmaRunbook -Name broken -Wait\n'not reached'\n",
                services["api_url"])
    assert proc.returncode == 1
    assert "ended Failed" in proc.stderr and "it broke" in proc.stderr
    assert "not reached" not in proc.stdout


WHATIF = """$credential = [pscredential]::new('u', (ConvertTo-SecureString 'p' -AsPlainText -Force))
Start-SmaRunbook -Name slow -WhatIf
Stop-SmaJob -Id {job} -WhatIf
Suspend-SmaJob -Id {job} -WhatIf
Resume-SmaJob -Id {job} -WhatIf
Publish-SmaRunbook -Name slow -WhatIf
Import-SmaRunbook -Path ./fresh.py -Publish -WhatIf
Set-SmaVariable -Name Region -Value eu -WhatIf
Set-SmaCredential -Name Db -Value $credential -WhatIf
Set-SmaSchedule -Name Nightly -Frequency Day -WhatIf
'done'
"""


@pytest.mark.pwsh
def test_whatif_sends_no_request_and_changes_nothing(tmp_path, api, services, worker):
    api.create_runbook("slow", content="import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    job = api.start("slow")
    api.wait(job["id"], statuses=("Running",))
    _runbook(tmp_path, "fresh.py", "print('fresh')\n")
    try:
        proc = pwsh(tmp_path, WHATIF.format(job=job["id"]), services["api_url"])
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[-1] == "done"
        assert [line for line in lines if line.startswith("What if:")] == lines[:-1]
        assert len(lines) == 10
        assert f'"Stop" on target "job {job["id"]}"' in proc.stdout
        assert api.get(f"/api/v1/jobs/{job['id']}").get_json()["status"] == "Running"
        assert [j["id"] for j in api.get("/api/v1/jobs").get_json()["items"]] == [job["id"]]
        assert api.get("/api/v1/runbooks/fresh").status_code == 404
        for path in ("variables/Region", "credentials/Db", "schedules/Nightly"):
            assert api.get(f"/api/v1/{path}").status_code == 404, path
        # nothing listens there: any request would fail the script
        nowhere = pwsh(tmp_path, WHATIF.format(job=job["id"]), f"http://127.0.0.1:{free_port()}")
        assert nowhere.returncode == 0, nowhere.stderr
        assert nowhere.stdout == proc.stdout
    finally:
        api.post(f"/api/v1/jobs/{job['id']}/stop")
        api.wait(job["id"])


ERRORS = """function Show-Failure([scriptblock]$Call) {
    try { & $Call; 'no error' } catch {
        '{0}|{1}|{2}|{3}' -f [int]$_.Exception.StatusCode, $_.FullyQualifiedErrorId,
            $_.CategoryInfo.Category, $_.Exception.Message
    }
}
"""


@pytest.mark.pwsh
def test_errors_carry_the_server_message_and_status(tmp_path, api, services):
    reader = api.post("/api/v1/tokens", json={"name": "viewer", "role": "reader"}).get_json()
    url = services["api_url"]
    services["web_app"].extensions["sma_auth_failures"].clear()  # 3 wrong tokens follow
    wrong = pwsh(tmp_path, ERRORS + (
        "Show-Failure { Get-SmaRunbook }\n"
        "Show-Failure { Set-SmaSchedule -Name Nightly -Frequency Day }\n"), url, token="wrong")
    assert wrong.returncode == 0, wrong.stderr
    for line in wrong.stdout.splitlines():
        status, error_id, category, message = line.split("|")
        assert (status, category) == ("401", "AuthenticationError"), line
        assert error_id.startswith("SmaApi401"), line
        assert message == "sma: Invalid, expired or revoked token. (HTTP 401)", line

    denied = pwsh(tmp_path, ERRORS + (
        "Show-Failure { Set-SmaVariable -Name Region -Value eu }\n"
        "Show-Failure { Set-SmaSchedule -Name Missing -Interval 2 }\n"
        "Get-SmaRunbook | Measure-Object | ForEach-Object Count\n"), url, token=reader["token"])
    assert denied.returncode == 0, denied.stderr
    forbidden, patch_forbidden, count = denied.stdout.splitlines()
    for line in (forbidden, patch_forbidden):  # a 403 is not "missing": only a 404 is
        status, error_id, category, message = line.split("|")
        assert (status, category) == ("403", "PermissionDenied"), line
        assert error_id.startswith("SmaApi403"), line
        assert "This needs the author role; your token has the reader role." in message
    assert count == "0"
    assert api.get("/api/v1/variables/Region").status_code == 404

    missing = pwsh(tmp_path, ERRORS + "Show-Failure { Set-SmaSchedule -Name Missing -Interval 2 }\n",
                   url)
    assert missing.stdout.strip().endswith(
        "|Schedule Missing does not exist: give -Frequency to create it."), missing.stdout
    assert api.get("/api/v1/schedules/Missing").status_code == 404

    port = free_port()
    unreachable = pwsh(tmp_path, ERRORS + "Show-Failure { Get-SmaJob }\n", f"http://127.0.0.1:{port}")
    status, error_id, category, message = unreachable.stdout.strip().split("|")
    assert (status, category) == ("0", "ConnectionError")
    assert error_id.startswith("SmaUnreachable")
    assert message.startswith(f"sma: cannot reach http://127.0.0.1:{port}: ")

    uncaught = pwsh(tmp_path, "Get-SmaRunbook\n'not reached'\n", url, token="wrong")
    assert uncaught.returncode == 1
    assert "Invalid, expired or revoked token." in uncaught.stderr
    assert "not reached" not in uncaught.stdout


@pytest.mark.pwsh
def test_bodies_are_sent_as_utf8(tmp_path, api, services):
    text = "zoë — ☃ 日本"
    _runbook(tmp_path, "greet.py", f"print('{text}')\n")
    proc = pwsh(tmp_path, (
        f"Set-SmaVariable -Name Greeting -Value '{text}' | Out-Null\n"
        "$null = Import-SmaRunbook -Path ./greet.py\n"), services["api_url"])
    assert proc.returncode == 0, proc.stderr
    assert api.get("/api/v1/variables/Greeting").get_json()["value"] == text
    assert api.get("/api/v1/runbooks/greet/draft").get_json()["content"] == f"print('{text}')\n"
