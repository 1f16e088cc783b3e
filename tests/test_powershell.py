"""PowerShell runbooks: the publish-time parser (no pwsh needed), the engine's command line, and
the host script end to end (needs pwsh, skipped loudly without it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from smacommon.errors import ScriptError, ValidationFailed
from smacommon.scripts import analyze as analyze_any
from smacommon.scripts.powershell import analyze
from smaworker.engines import get_engine
from smaworker.engines.base import RUNTIME_DIR, JobContext
from smaworker.engines.powershell import PowerShellEngine, host_settings

needs_pwsh = pytest.mark.pwsh  # skipped, saying why, where pwsh is absent (conftest.py)
INT32 = {"minimum": -2**31, "maximum": 2**31 - 1}  # what an [int] parameter declares


def one(script: str) -> dict:
    (decl,) = analyze(script)
    return decl


# --- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(("type_", "expected"), [
    ("string", "string"), ("String", "string"), ("System.String", "string"), ("char", "string"),
    ("guid", "string"), ("int", "int"), ("int32", "int"), ("System.Int32", "int"),
    ("int64", "int"), ("long", "int"), ("byte", "int"), ("int16", "int"), ("uint32", "int"),
    ("UInt64", "int"), ("double", "float"), ("float", "float"), ("single", "float"),
    ("decimal", "float"), ("System.Double", "float"), ("bool", "bool"), ("boolean", "bool"),
    ("System.Boolean", "bool"), ("switch", "bool"), ("datetime", "datetime"),
    ("System.DateTime", "datetime"), ("string[]", "list"), ("int[]", "list"),
    ("object[]", "list"), ("array", "list"), ("System.Collections.ArrayList", "list"),
    ("System.Collections.Generic.List[string]", "list"), ("hashtable", "object"),
    ("System.Collections.Hashtable", "object"), ("pscustomobject", "object"),
    ("psobject", "object"), ("PSCustomObject", "object"), ("object", "any"),
    ("System.Object", "any"), ("PSCredential", "any"), ("Nullable[int]", "int"),
])
def test_parameter_types(type_: str, expected: str) -> None:
    assert one(f"param([{type_}]$Value)\n")["type"] == expected


def test_untyped_parameter_is_any() -> None:
    assert analyze("param($Value)\n") == [{"name": "Value", "type": "any", "mandatory": False}]


@pytest.mark.parametrize(("attribute", "mandatory"), [
    ("[Parameter(Mandatory=$true)]", True),
    ("[Parameter(Mandatory = $True)]", True),
    ("[Parameter(Mandatory)]", True),
    ("[parameter(mandatory)]", True),
    ("[Parameter(Mandatory=$true, Position=0)]", True),
    ("[Parameter(Position=0, Mandatory=$true, HelpMessage='x')]", True),
    ("[Parameter(Mandatory=1)]", True),
    ("[Parameter(Mandatory=$false)]", False),
    ("[Parameter(Mandatory=0)]", False),
    ("[Parameter()]", False),
    ("[Parameter(Position=0)]", False),
    ("[ValidateNotNullOrEmpty()]", False),
    ("", False),
    # mandatory in one parameter set only: a start may leave it out
    ("[Parameter(Mandatory, ParameterSetName='A')][Parameter(ParameterSetName='B')]", False),
    ("[Parameter(Mandatory, ParameterSetName='A')][Parameter(Mandatory, ParameterSetName='B')]",
     True),
])
def test_mandatory_forms(attribute: str, mandatory: bool) -> None:
    decl = one(f"param(\n    {attribute}\n    [string]$Name\n)\n")
    assert decl["mandatory"] is mandatory
    assert decl["type"] == "string"


@pytest.mark.parametrize(("default", "expected"), [
    ("5", 5), ("-5", -5), ("0x10", 16), ("10MB", 10 * 1024 * 1024), ("1kb", 1024),
    ("1.5", 1.5), ("-1.5e3", -1500.0), ("'text'", "text"), ("'it''s'", "it's"),
    ('"text"', "text"), ('"tab`there"', "tab\there"), ('"say ""hi"""', 'say "hi"'),
    ('"`$HOME"', "$HOME"), ("''", ""), ("$true", True), ("$True", True), ("$false", False),
    ("$FALSE", False), ("$null", None), ("@'\nhere\nstring\n'@", "here\nstring"),
])
def test_literal_defaults(default: str, expected: object) -> None:
    decl = one(f"param($Value = {default})\n")
    assert decl["default"] == expected
    assert type(decl["default"]) is type(expected)


@pytest.mark.parametrize("default", [
    '"hello $env:USER"', '"$(Get-Date)"', "(Get-Date)", "$env:COMPUTERNAME", "@('a', 'b')",
    "@{ a = 1 }", "[int]::MaxValue", "1 + 2", "$OtherParameter", "$PSScriptRoot",
])
def test_computed_defaults_are_left_out(default: str) -> None:
    decl = one(f"param($Value = {default})\n")
    assert "default" not in decl


def test_defaults_follow_the_declared_type() -> None:
    decls = analyze("param([string]$S = 5, [int]$I = '7', [bool]$B = 1, [int]$Bad = 'x',\n"
                    "      [string[]]$L = 'one', [datetime]$D = '2024-05-01T10:00:00Z')\n")
    by_name = {d["name"]: d for d in decls}
    assert by_name["S"]["default"] == "5"
    assert by_name["I"]["default"] == 7
    assert by_name["B"]["default"] is True
    assert "default" not in by_name["Bad"]  # PowerShell could not convert it either
    assert by_name["L"]["default"] == ["one"]
    assert by_name["D"]["default"] == "2024-05-01T10:00:00Z"


def test_mandatory_parameter_keeps_no_default() -> None:
    # PowerShell never uses the default of a mandatory parameter
    decl = one("param([Parameter(Mandatory)][string]$Name = 'ignored')\n")
    assert decl == {"name": "Name", "type": "string", "mandatory": True}


@pytest.mark.parametrize(("declaration", "expected"), [
    ("[switch]$Force", {"name": "Force", "type": "bool", "mandatory": False, "default": False}),
    ("[Parameter(Mandatory)][switch]$Force",
     {"name": "Force", "type": "bool", "mandatory": False, "default": False}),
    ("[switch]$Force = $true",
     {"name": "Force", "type": "bool", "mandatory": False, "default": True}),
    ("[System.Management.Automation.SwitchParameter]$Force",
     {"name": "Force", "type": "bool", "mandatory": False, "default": False}),
])
def test_switch_parameters(declaration: str, expected: dict) -> None:
    assert one(f"param({declaration})\n") == expected


def test_full_param_block_with_cmdletbinding_comments_and_requires() -> None:
    script = """#requires -Version 5.1
<#
.SYNOPSIS
    Restarts a service.
#>
# a comment before the attribute
[CmdletBinding(SupportsShouldProcess = $true)]
param(
    # the computer
    [Parameter(Mandatory = $true, Position = 0)]
    [ValidateNotNullOrEmpty()]
    [string] $ComputerName,

    [Parameter()]
    [ValidateRange(1, 10)]
    [int] $Retries = 3,

    [string[]] $Services = @('Spooler'),

    [switch] $Force
)

foreach ($service in $Services) {
    Write-Output "Restarting $service on $ComputerName"
}
"""
    assert analyze(script) == [
        {"name": "ComputerName", "type": "string", "mandatory": True},
        {"name": "Retries", "type": "int", "mandatory": False, **INT32, "default": 3},
        {"name": "Services", "type": "list", "mandatory": False},
        {"name": "Force", "type": "bool", "mandatory": False, "default": False},
    ]


def test_workflow_parameters() -> None:
    script = """<# SMA runbook #>
workflow Stop-Vms
{
    param(
        [Parameter(Mandatory=$true)]
        [string] $ResourceGroup,
        [int] $WaitMinutes = 5
    )
    $vms = Get-Vm -ResourceGroup $ResourceGroup
    foreach -parallel -throttlelimit 4 ($vm in $vms) {
        InlineScript {
            Stop-Vm -Name $using:vm
        } -PSComputerName $vm.Host
    }
    Checkpoint-Workflow
}
"""
    assert analyze(script) == [
        {"name": "ResourceGroup", "type": "string", "mandatory": True},
        {"name": "WaitMinutes", "type": "int", "mandatory": False, **INT32, "default": 5},
    ]


@pytest.mark.parametrize("script", [
    "function Send-Report {\n    param([string]$To, [int]$Days = 7)\n    $To\n}\n",
    "function Send-Report([string]$To, [int]$Days = 7) { $To }\n",
    "Function Send-Report {\n    [CmdletBinding()]\n    Param([string]$To, [int]$Days = 7)\n"
    "    process { $To }\n}\n",
    "workflow Send-Report { param([string]$To, [int]$Days = 7) $To }\n",
])
def test_single_function_parameters(script: str) -> None:
    assert analyze(script) == [
        {"name": "To", "type": "string", "mandatory": False},
        {"name": "Days", "type": "int", "mandatory": False, **INT32, "default": 7},
    ]


@pytest.mark.parametrize("script", [
    "",
    "Write-Output 'hello'\n",
    "# only a comment\n",
    "function Helper([string]$x) { $x }\nHelper 'a'\n",  # defines and calls: a plain script
    "function A($x) { $x }\nfunction B($y) { $y }\n",
])
def test_no_parameters(script: str) -> None:
    assert analyze(script) == []


def test_script_level_param_block_wins_over_functions() -> None:
    script = "param([string]$Top)\nfunction Inner([int]$x) { $x }\nInner 1\n"
    assert analyze(script) == [{"name": "Top", "type": "string", "mandatory": False}]


def test_empty_param_block() -> None:
    assert analyze("[CmdletBinding()]\nparam()\n") == []
    assert analyze("param()") == []


@pytest.mark.parametrize("script", [
    "param([string]$Name)",            # nothing after the param block, no final newline
    "param([string]$Name)\n# only a comment after it\n",
    "\ufeffparam([string]$Name)\n",    # byte order mark
    "param(\r\n  [string]$Name\r\n)\r\nWrite-Output $Name\r\n",
    "using namespace System.Text\nparam([string]$Name)\n$Name\n",
])
def test_parameter_block_variants(script: str) -> None:
    assert analyze(script) == [{"name": "Name", "type": "string", "mandatory": False}]


def test_names_keep_their_spelling() -> None:
    names = [d["name"] for d in analyze("param($camelCase, $PascalCase, $UPPER, ${Braced})\n")]
    assert names == ["camelCase", "PascalCase", "UPPER", "Braced"]


def test_duplicate_names_differing_in_case_are_an_error() -> None:
    with pytest.raises(ScriptError) as caught:
        analyze("param(\n    [string]$Name,\n    [int]$NAME\n)\n")
    assert "duplicate parameter" in caught.value.message
    assert (caught.value.line, caught.value.column) == (3, 10)


def test_reserved_parameter_name_names_its_place() -> None:
    with pytest.raises(ValidationFailed) as caught:
        analyze("param(\n    [string]$SMA_JOB_ID\n)\n")
    assert "reserved" in caught.value.message


def test_dispatch_by_runbook_type() -> None:
    assert analyze_any("powershell", "param([int]$N = 1)\n") == [
        {"name": "N", "type": "int", "mandatory": False, **INT32, "default": 1}]


# --- syntax errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(("script", "fragment", "line", "column"), [
    ("param([string]$Name)\n\nfunction Foo {\n    Write-Output 1\n\nWrite-Output 2\n",
     "missing closing '}'", 3, 14),
    ("if ($x {\n    Write-Output 1\n}\n", "missing closing ')'", 1, 4),
    ("$x = 1\n$y = (1 + \n", "missing closing ')'", 2, 6),
    ("$h = @{ a = 1\n", "missing closing '}'", 1, 6),
    ("foreach ($i in 1..3) {\n    $i\n", "missing closing '}'", 1, 22),
    ("Write-Output 'done'\n}\n", "unexpected '}'", 2, 1),
    ("Write-Output 1)\n", "unexpected ')'", 1, 15),
    ("$x = 1 +* 2\n", "unexpected '*'", 1, 9),
    ("Get-Item x | | Sort-Object\n", "unexpected '|'", 1, 12),
    ("$a = 1\nWrite-Output 'no end\n", "unterminated string", 2, 14),
    ('Write-Output "no end\n', "unterminated string", 1, 14),
    ("[int]$x =\n", "incomplete statement", 1, 9),
    ("# ünïcödé\n$ä = 'x'; }\n", "unexpected '}'", 2, 11),
    ("param([string]$Name\n", "missing closing ')'", 1, 6),
])
def test_syntax_errors_name_line_and_column(script: str, fragment: str, line: int,
                                            column: int) -> None:
    with pytest.raises(ScriptError) as caught:
        analyze(script)
    error = caught.value
    assert error.message.startswith("PowerShell syntax error: ")
    assert fragment in error.message
    assert (error.line, error.column) == (line, column)
    assert error.errors == {"content": [error.message]}


def test_real_error_is_found_behind_patched_constructs() -> None:
    script = ("param([string]$Name)\n"
              "Get-Process | Select-Object Name, Id\n"
              "switch ($Name) { 'a' { 1 } default { 2 } }\n"
              "$x = $Name ?? 'none'\n"
              "\n"
              "if ($x -eq 'a' {\n"
              "    Write-Output $x\n"
              "}\n")
    with pytest.raises(ScriptError) as caught:
        analyze(script)
    assert "missing closing ')'" in caught.value.message
    assert (caught.value.line, caught.value.column) == (6, 4)


def test_syntax_error_through_dispatch() -> None:
    with pytest.raises(ScriptError) as caught:
        analyze_any("powershell", "function f {\n")
    assert caught.value.line == 1


@pytest.mark.parametrize("script", [
    # what the grammar alone rejects but PowerShell accepts
    "Get-Process | Select-Object Name, Id, CPU | Sort-Object CPU -Descending\n",
    "ls | Sort-Object Name,Length\n",
    "Remove-Item a.txt, b.txt -Force\n",
    "Copy-Item -Path .\\a.txt, .\\b.txt -Destination \\\\server\\share\\\n",
    "Get-ChildItem -Path C:\\Windows\\Temp, C:\\Temp -File\n",
    "$x | Select-Object Name,\n    Id\n",
    "function W { param($a) Write-Output $a }\n",
    "function Get-X { [OutputType([string])] param() 'x' }\n",
    "switch ($x) { 1 { 'one' } default { 'other' } }\n",
    "$x = $a ?? 'b'\n$y ??= 2\n$z = $a ? 1 : 2\n",
    "$x = 1 + 10MB\n",
    ":outer foreach ($a in 1..3) { foreach ($b in 1..3) { continue outer } }\n",
    "using namespace System.IO\nusing module Foo\n$x = 1\n",
    "workflow W {\n  foreach -parallel -throttlelimit 5 ($c in $list) {\n"
    "    InlineScript { $using:c } -PSComputerName $c\n  }\n}\n",
    # and ordinary PowerShell
    "$h = @{ a = 1; b = 'x' }\n$h.a\n",
    "$o = [pscustomobject]@{ Name = 'x'; Value = 2 }\n",
    "Get-ChildItem | Where-Object { $_.Length -gt 1kb } | ForEach-Object { $_.Name }\n",
    "$s = @\"\nhello $name\n\"@\n",
    "try { throw 'x' } catch [System.Exception] { $_.Exception.Message } finally { 'f' }\n",
    "& $script @params\n",
    "$r = Invoke-RestMethod -Uri $u -Method Post -Body ($b | ConvertTo-Json -Depth 5)\n",
    "do { $i++ } while ($i -lt 10)\n",
    "for ($i = 0; $i -lt 3; $i++) { $i }\n",
    "[void]$list.Add(1)\n",
    "$a, $b = 1, 2\n",
    "Write-Output `\n  'continued'\n",
    "Write-Output \"$($x.Name) is $(Get-Date -Format o)\"\n",
    "class P { [string]$Name; P([string]$n) { $this.Name = $n } }\n",
    "enum Color { Red; Green }\n",
    "$b = { param($x) $x + 1 }\n& $b 2\n",
    "Get-Service -Name Spooler, W32Time -ErrorAction SilentlyContinue\n",
    "$x = $(if ($a) { 1 } else { 2 })\n",
    "1..10 | ForEach-Object -Parallel { $_ } -ThrottleLimit 2\n",
    "Write-Host 'a' -ForegroundColor Red\n",
    "cmd1 && cmd2 || cmd3\n",
    "$größe = @{ Straße = 1 }\n$größe.Straße\n",
])
def test_valid_powershell_is_accepted(script: str) -> None:
    analyze(script)


@pytest.mark.parametrize("name", [
    "SmaHost.ps1", "SmaHostRun.ps1", "SmaRunbook/SmaRunbook.psm1", "SmaRunbook/SmaStreams.ps1",
    "SmaRunbook/SmaAssets.ps1", "SmaRunbook/SmaJson.ps1"])
def test_runtime_scripts_parse(name: str) -> None:
    """The worker's own PowerShell is at least well-formed where pwsh is absent."""
    analyze((RUNTIME_DIR / name).read_text(encoding="utf-8"))


# --- the engine ------------------------------------------------------------------------------


def _context(tmp_path: Path, parameters: dict, **flags: bool) -> JobContext:
    script = tmp_path / "runbook.ps1"
    script.write_text("param([int]$Count)\n", encoding="utf-8")
    return JobContext(
        job_id="00000000-0000-0000-0000-000000000001", workdir=tmp_path, script_path=script,
        parameters=parameters, declared=[{"name": "Count", "type": "int", "mandatory": False}],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SMA_RECORD_FD": "7"}, **flags)


def test_engine_is_registered() -> None:
    engine = get_engine("powershell")
    assert isinstance(engine, PowerShellEngine)
    assert (engine.name, engine.suffix, engine.executable) == ("powershell", ".ps1", "pwsh")
    assert engine.available() is (shutil.which("pwsh") is not None)


def test_engine_command(tmp_path: Path) -> None:
    parameters = {"Count": 3, "Name": "zoë", "When": "2024-05-01T10:00:00Z", "Items": [1, "a"],
                  "Options": {"deep": {"x": None}}, "Force": True}
    ctx = _context(tmp_path, parameters, log_verbose=True, log_progress=False, log_debug=True)
    argv, env = PowerShellEngine().command(ctx)

    assert argv[0] == (shutil.which("pwsh") or "pwsh")
    assert argv[1:4] == ["-NoLogo", "-NoProfile", "-NonInteractive"]
    assert "-Command" not in argv
    file_at = argv.index("-File")
    assert argv[file_at + 1] == str(RUNTIME_DIR / "SmaHost.ps1")
    assert argv[file_at + 2:] == ["-ScriptPath", str(ctx.script_path),
                                  "-ParametersPath", str(tmp_path / "parameters.json"),
                                  "-SettingsPath", str(tmp_path / "host.json")]
    assert (RUNTIME_DIR / "SmaHost.ps1").is_file()
    assert (RUNTIME_DIR / "SmaRunbook" / "SmaRunbook.psm1").is_file()
    settings = json.loads((tmp_path / "host.json").read_text(encoding="utf-8"))
    assert settings == host_settings(ctx)

    written = (tmp_path / "parameters.json").read_text(encoding="utf-8")
    assert json.loads(written) == parameters

    assert env["PSModulePath"].split(os.pathsep)[0] == str(RUNTIME_DIR)
    assert env["SMA_LOG_VERBOSE"] == "1"
    assert env["SMA_LOG_PROGRESS"] == "0"
    assert env["SMA_LOG_DEBUG"] == "1"
    assert env["POWERSHELL_TELEMETRY_OPTOUT"] == "1"
    assert env["POWERSHELL_UPDATECHECK"] == "Off"
    assert env["DOTNET_CLI_TELEMETRY_OPTOUT"] == "1"
    assert "SMA_RECORD_FD" not in env  # the worker's base environment carries it


def test_engine_keeps_an_existing_module_path(tmp_path: Path) -> None:
    ctx = _context(tmp_path, {})
    ctx.env["PSModulePath"] = "/opt/modules"
    _argv, env = PowerShellEngine().command(ctx)
    assert env["PSModulePath"] == os.pathsep.join([str(RUNTIME_DIR), "/opt/modules"])
    assert json.loads((tmp_path / "parameters.json").read_text(encoding="utf-8")) == {}


# --- the host, end to end (pwsh) -------------------------------------------------------------


class HostRun:
    def __init__(self, code: int, stdout: str, stderr: str, records: list[dict]) -> None:
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        self.records = records
        self.order: list[tuple[str, object]] = []  # ("text", lines) and ("record", dict)

    def stream(self, name: str) -> list[dict]:
        return [r for r in self.records if r.get("stream") == name]

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def run_host(tmp_path: Path, script: str, parameters: dict | None = None,
             env: dict[str, str] | None = None, **flags: bool) -> HostRun:
    """SmaHost.ps1 the way the worker starts it: argv and env from the engine (and `env`),
    stdout a pipe whose second descriptor is the record channel, read apart by the worker's
    Demux."""
    from smaworker.channel import RECORD, TEXT, Demux, new_tag

    script_path = tmp_path / "runbook.ps1"
    script_path.write_text(script, encoding="utf-8")
    stdout_r, stdout_w = os.pipe()
    tag = new_tag()
    ctx = JobContext(
        job_id="6f1c1a52-7d4e-4a8e-9d57-0d2f3f6a9b10", workdir=tmp_path, script_path=script_path,
        parameters=parameters or {}, declared=[], env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
            "TMPDIR": str(tmp_path), "LANG": "C.UTF-8",
            "SMA_JOB_ID": "6f1c1a52-7d4e-4a8e-9d57-0d2f3f6a9b10",
            "SMA_RECORD_FD": str(stdout_w), "SMA_RECORD_TAG": tag, **(env or {})}, **flags)
    argv, extra = PowerShellEngine().command(ctx)
    try:
        proc = subprocess.Popen(argv, cwd=tmp_path, env={**ctx.env, **extra},
                                stdin=subprocess.DEVNULL, stdout=stdout_w,
                                stderr=subprocess.PIPE, pass_fds=(stdout_w,))
    finally:
        os.close(stdout_w)
    chunks: list[bytes] = []

    def read_stdout() -> None:
        with os.fdopen(stdout_r, "rb") as out:
            chunks.extend(iter(lambda: out.read(65536), b""))

    reader = threading.Thread(target=read_stdout)
    reader.start()
    _, stderr = proc.communicate(timeout=120)
    reader.join(timeout=30)
    data = b"".join(chunks)
    demux = Demux(tag, 1 << 20)
    pieces = demux.feed(data) + demux.feed(b"")
    text = b"".join(p for kind, p in pieces if kind == TEXT).decode("utf-8")
    records = [json.loads(p) for kind, p in pieces if kind == RECORD and p.strip()]
    run = HostRun(proc.returncode, text, stderr.decode("utf-8"), records)
    run.order = [("record", json.loads(p)) if kind == RECORD else ("text", p.decode())
                 for kind, p in pieces if p.strip()]
    return run


@needs_pwsh
def test_host_records_keep_their_place_among_lines(tmp_path: Path) -> None:
    """Write-Warning then Write-Output, again and again: the worker reads them in the order
    the runbook wrote them (one pipe), never a line ahead of the record written before it."""
    script = ("foreach ($i in 1..300) {\n"
              "    Write-Warning \"w$i\"\n"
              "    Write-Output \"o$i\"\n"
              "    Write-Host \"h$i\"\n"
              "}\n")
    run = run_host(tmp_path, script)
    assert run.code == 0, run.stderr
    got = [f"{kind}:{item['text'] if kind == 'record' else item}"
           for kind, item in run.order for item in ([item] if kind == "record"
                                                   else item.splitlines())]
    want = [line for i in range(1, 301)
            for line in (f"record:w{i}", f"text:o{i}", f"text:h{i}")]
    assert got == want


@needs_pwsh
def test_host_output_lines(tmp_path: Path) -> None:
    run = run_host(tmp_path, "Write-Output 'hello'\n'two'\n42\n$true\n"
                             "Write-Output \"multi`nline\"\nWrite-Host 'from host'\n")
    assert run.code == 0, run.stderr
    assert run.lines == ["hello", "two", "42", "True", "multi", "line", "from host"]
    assert run.stderr == ""
    assert run.records == []


@needs_pwsh
def test_host_typed_output_is_a_record(tmp_path: Path) -> None:
    run = run_host(tmp_path, "[pscustomobject]@{ Name = 'a'; Count = 2; Tags = @('x', 'y') }\n"
                             "Write-Output @{ key = 'value' }\n")
    assert run.code == 0, run.stderr
    first, second = run.stream("Output")
    assert first["value"] == {"Name": "a", "Count": 2, "Tags": ["x", "y"]}
    assert "Name" in first["text"] and "a" in first["text"]
    assert second["value"] == {"key": "value"}
    assert run.stdout == ""


@needs_pwsh
def test_host_warning_and_verbose_records(tmp_path: Path) -> None:
    script = "Write-Warning 'careful'\nWrite-Verbose 'details'\nWrite-Debug 'internals'\n"
    run = run_host(tmp_path, script, log_verbose=True)
    assert run.code == 0, run.stderr
    assert run.records == [{"stream": "Warning", "text": "careful"},
                           {"stream": "Verbose", "text": "details"}]
    quiet = run_host(tmp_path, script)
    assert quiet.records == [{"stream": "Warning", "text": "careful"}]


@needs_pwsh
def test_host_progress_record(tmp_path: Path) -> None:
    script = "Write-Progress -Activity 'Copying' -Status 'file 1' -PercentComplete 50\n'done'\n"
    run = run_host(tmp_path, script, log_progress=True)
    assert run.code == 0, run.stderr
    assert run.stream("Progress") == [{
        "stream": "Progress", "text": "Copying: file 1 (50%)",
        "value": {"activity": "Copying", "status": "file 1", "percent": 50}}]
    assert run_host(tmp_path, script).stream("Progress") == []


@needs_pwsh
def test_host_write_error_goes_to_stderr_and_the_job_goes_on(tmp_path: Path) -> None:
    run = run_host(tmp_path, "Write-Error 'something broke'\nWrite-Output 'still here'\n")
    assert run.code == 0
    assert "something broke" in run.stderr
    assert run.lines == ["still here"]


@needs_pwsh
def test_host_throw_fails_with_exit_1(tmp_path: Path) -> None:
    run = run_host(tmp_path, "Write-Output 'before'\nthrow 'boom'\nWrite-Output 'after'\n")
    assert run.code == 1
    assert run.lines == ["before"]
    assert "boom" in run.stderr
    assert "SmaHost.ps1" not in run.stderr


@needs_pwsh
def test_host_exit_code_is_kept(tmp_path: Path) -> None:
    run = run_host(tmp_path, "Write-Output 'leaving'\nexit 3\n")
    assert run.code == 3
    assert run.lines == ["leaving"]


@needs_pwsh
def test_host_binds_typed_parameters(tmp_path: Path) -> None:
    script = ("param([int]$Count, [string]$When, [string[]]$Items, [switch]$Force,"
              " [hashtable]$Options)\n"
              "Write-Output $Count.GetType().Name\nWrite-Output ($Count + 1)\n"
              "Write-Output $When\nWrite-Output $Items.Count\nWrite-Output $Force.IsPresent\n"
              "Write-Output $Options.deep\n")
    run = run_host(tmp_path, script, {"Count": 41, "When": "2024-05-01T10:00:00Z",
                                      "Items": ["a", "b"], "Force": True,
                                      "Options": {"deep": "yes"}})
    assert run.code == 0, run.stderr
    assert run.lines == ["Int32", "42", "2024-05-01T10:00:00Z", "2", "True", "yes"]


@needs_pwsh
def test_host_missing_mandatory_parameter_fails(tmp_path: Path) -> None:
    run = run_host(tmp_path, "param([Parameter(Mandatory)][string]$Name)\n$Name\n")
    assert run.code == 1
    assert "Name" in run.stderr


@needs_pwsh
def test_host_runs_an_sma_workflow(tmp_path: Path) -> None:
    script = """workflow Test-Greeting
{
    param([Parameter(Mandatory=$true)][string]$Name, [int]$Times = 2)
    foreach -parallel ($i in 1..$Times) {
        Write-Output "Hello $Name $i"
    }
    $greeting = InlineScript { "inline $using:Name" }
    Write-Output $greeting
    Checkpoint-Workflow
    Write-Output "job $($PSPrivateMetadata.JobId)"
}
"""
    run = run_host(tmp_path, script, {"Name": "sma"})
    assert run.code == 0, run.stderr
    assert run.lines == ["Hello sma 1", "Hello sma 2", "inline sma",
                         "job 6f1c1a52-7d4e-4a8e-9d57-0d2f3f6a9b10"]
    assert [r for r in run.records if r.get("type") == "checkpoint"] == [
        {"type": "checkpoint", "data": None}]


@needs_pwsh
def test_host_reports_a_parse_error(tmp_path: Path) -> None:
    run = run_host(tmp_path, "Write-Output 'a'\nif ($x {\n")
    assert run.code == 1
    assert "runbook.ps1:2:" in run.stderr



# --- secret parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(("declaration", "expected"), [
    ("[Parameter(Mandatory)][SecureString]$Pw",
     {"name": "Pw", "type": "string", "mandatory": True, "secret": True}),
    ("[System.Security.SecureString]$Pw",
     {"name": "Pw", "type": "string", "mandatory": False, "secret": True}),
    ("[PSCredential]$Cred", {"name": "Cred", "type": "any", "mandatory": False, "secret": True}),
    ("[System.Management.Automation.PSCredential]$Cred",
     {"name": "Cred", "type": "any", "mandatory": False, "secret": True}),
    ("[string]$Name", {"name": "Name", "type": "string", "mandatory": False}),
])
def test_secure_string_and_credential_parameters_are_secret(declaration: str,
                                                             expected: dict) -> None:
    assert one(f"param({declaration})\n") == expected


SECRET_SCRIPT = """param([SecureString]$Pw, [PSCredential]$Cred, [string[]]$List)
"pw " + [System.Net.NetworkCredential]::new('', $Pw).Password
"user " + $Cred.UserName
"cred " + $Cred.GetNetworkCredential().Password
"list " + $List.Count
"""


@needs_pwsh
def test_host_passes_secure_string_and_credential_parameters(tmp_path: Path) -> None:
    run = run_host(tmp_path, SECRET_SCRIPT, {
        "Pw": "s3cret-value", "Cred": {"username": "bob", "password": "hunter22"},
        "List": ["one"]})
    assert run.code == 0, run.stderr
    assert run.lines == ["pw s3cret-value", "user bob", "cred hunter22", "list 1"]
    workflow = ("workflow Use-Secret\n{\n    param([PSCredential]$Cred)\n"
                "    \"cred $($Cred.UserName) $($Cred.GetNetworkCredential().Password)\"\n}\n")
    run = run_host(tmp_path, workflow, {"Cred": {"username": "ann", "password": "pa55word"}})
    assert run.code == 0, run.stderr
    assert run.lines == ["cred ann pa55word"]


@needs_pwsh
def test_secure_string_parameter_is_sealed_and_masked(api, worker) -> None:
    rb = api.create_runbook(content=SECRET_SCRIPT, runbook_type="powershell")
    job = api.wait(api.start(rb["name"], {
        "Pw": "s3cret-value", "Cred": {"username": "bob", "password": "hunter22"},
        "List": ["a", "b"]})["id"], timeout=120)
    assert job["status"] == "Completed", job
    assert job["parameters"] == {"Pw": "***", "Cred": "***", "List": ["a", "b"]}
    lines = api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True).splitlines()
    assert lines == ["pw ***", "user bob", "cred ***", "list 2"]
