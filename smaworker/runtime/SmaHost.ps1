<#
.SYNOPSIS
Runs one PowerShell runbook for an sma worker and maps PowerShell's streams to SMA's.

.DESCRIPTION
pwsh -NoLogo -NoProfile -NonInteractive -File SmaHost.ps1
     -ScriptPath <runbook.ps1> -ParametersPath <parameters.json> -SettingsPath <host.json>

The worker (smaworker/engines/powershell.py) writes the parameters and the settings: the
preference variables the runbook starts with, which optional streams become records, where
a converted workflow goes.

The runbook runs in a runspace of its own (SmaHostRun.ps1), as a script: `#Requires` holds,
it sees none of this host's variables or functions, and its preference variables are that
runspace's global ones, which modules see too.

- Output: strings, numbers and booleans go to stdout, one line per line; any other object is
  a typed Output record (its data as "value", its formatted text as "text"). Write-Host and
  Write-Information go to stdout too.
- Errors (non-terminating) go to stderr, one line per line of their message.
- Warning, Verbose, Debug and Progress (a cmdlet's too) become records on the record channel
  (the descriptor whose number is in $env:SMA_RECORD_FD: a second descriptor of the stdout
  pipe, so records and lines arrive in the order they were written; see SmaStreams.ps1);
  Verbose, Debug and Progress only when the runbook's log settings keep them.
- Exit code: 0 when the runbook ends, 1 when it fails with a terminating error (the message
  and the runbook's stack go to stderr), N when it calls `exit N`.

A runbook that is a single `workflow Name { ... }` (SMA's style) runs as a function of that
name: PowerShell 7 has no workflows, so `workflow` becomes `function`, `foreach -parallel`
becomes `foreach`, `$using:x` and `$workflow:x` become `$x`, and InlineScript / parallel /
sequence blocks run in order (SmaRunbook.psm1); the converted text is run from its own file.
A script that is a single `function` is called the same way; any other script runs as it is.
#>
param(
    [Parameter(Mandatory)][string]$ScriptPath,
    [Parameter(Mandatory)][string]$ParametersPath,
    [Parameter(Mandatory)][string]$SettingsPath
)

$__sma = @{
    ScriptPath     = $ScriptPath
    ParametersPath = $ParametersPath
    SettingsPath   = $SettingsPath
    ExitCode       = 0
}

$ErrorActionPreference = 'Stop'  # for the host's own preparation
$__sma.Utf8 = [System.Text.UTF8Encoding]::new($false)
try { [Console]::OutputEncoding = $__sma.Utf8 } catch { }
$OutputEncoding = $__sma.Utf8
if ($null -ne (Get-Variable -Name PSStyle -ErrorAction Ignore)) {
    $PSStyle.OutputRendering = 'PlainText'  # no colour escapes in text that is stored
}

function __SmaWriteLines([System.IO.TextWriter]$Writer, [string]$Text) {
    foreach ($line in ($Text -split '\r?\n')) { $Writer.WriteLine($line) }
}

function __SmaFail([string]$Message) {
    [Console]::Out.Flush()
    __SmaWriteLines ([Console]::Error) $Message
    [Console]::Error.Flush()
    exit 1
}

. (Join-Path $PSScriptRoot 'SmaRunbook/SmaJson.ps1')
. (Join-Path $PSScriptRoot 'SmaHostRun.ps1')

# --- parameters and settings -----------------------------------------------------------------

function __SmaReadJson([string]$What, [string]$Path) {
    try {
        $value = ConvertFrom-SmaJson ([System.IO.File]::ReadAllText($Path, $__sma.Utf8))
        if ($value -isnot [System.Collections.IDictionary]) { throw 'not a JSON object' }
        return $value
    } catch {
        __SmaFail "sma: cannot read the $What ($Path): $($_.Exception.Message)"
    }
}

$__sma.Parameters = __SmaReadJson 'parameters' $__sma.ParametersPath
$__sma.Settings = __SmaReadJson 'host settings' $__sma.SettingsPath

# --- the runbook -----------------------------------------------------------------------------

function __SmaParse([string]$Text) {
    $tokens = $null
    $errors = $null
    $ast = [System.Management.Automation.Language.Parser]::ParseInput($Text, $__sma.ScriptPath,
        [ref]$tokens, [ref]$errors)
    return @{ Ast = $ast; Tokens = $tokens; Errors = $errors }
}

function __SmaApplyEdits([string]$Text, [string]$Path) {
    # The edits that make an SMA workflow a PowerShell 7 function, computed by the worker
    # (smacommon/scripts/powershell/workflow.py): {"edits": [{offset, length, text}, ...]},
    # offsets and lengths in UTF-16 code units, as .NET strings count them.
    $json = [System.IO.File]::ReadAllText($Path, $__sma.Utf8)
    $edits = @((ConvertFrom-Json -InputObject $json).edits)
    # From the last offset back, so each edit leaves the offsets before it in place. A for
    # loop over a sorted array, not a pipeline: Sort-Object would unroll a single edit's
    # fields and walk them one by one.
    $offsets = [int[]]::new($edits.Count)
    for ($i = 0; $i -lt $edits.Count; $i++) { $offsets[$i] = [int]$edits[$i].offset }
    [array]::Sort($offsets, $edits)
    for ($i = $edits.Count - 1; $i -ge 0; $i--) {
        $edit = $edits[$i]
        $Text = $Text.Remove([int]$edit.offset, [int]$edit.length).Insert(
            [int]$edit.offset, [string]$edit.text)
    }
    return $Text
}

function __SmaParseErrors($Errors) {
    $lines = foreach ($parseError in $Errors) {
        $extent = $parseError.Extent
        "$($__sma.ScriptPath):$($extent.StartLineNumber):$($extent.StartColumnNumber): " +
            $parseError.Message
    }
    return ($lines -join "`n")
}

try {
    $__sma.Text = [System.IO.File]::ReadAllText($__sma.ScriptPath)
} catch {
    __SmaFail "sma: cannot read the runbook: $($_.Exception.Message)"
}
# A workflow runs as a function: the worker names the file of its edits in SMA_WORKFLOW_EDITS.
$__sma.Converted = $__sma.Text
$__sma.IsWorkflow = [bool]$env:SMA_WORKFLOW_EDITS
if ($__sma.IsWorkflow) {
    try {
        $__sma.Converted = __SmaApplyEdits $__sma.Text $env:SMA_WORKFLOW_EDITS
    } catch {
        __SmaFail "sma: cannot turn the workflow into a function: $($_.Exception.Message)"
    }
    Remove-Item -Path Env:SMA_WORKFLOW_EDITS  # the host's business, not the runbook's
}
$__sma.Parsed = __SmaParse $__sma.Converted
if ($__sma.Parsed.Errors.Count -gt 0) {
    __SmaFail (__SmaParseErrors $__sma.Parsed.Errors)
}

# A script that only defines one workflow or function runs as a call of it.
$__sma.Ast = $__sma.Parsed.Ast
$__sma.Definition = $null
if ($null -eq $__sma.Ast.ParamBlock -and $null -eq $__sma.Ast.BeginBlock -and
    $null -eq $__sma.Ast.ProcessBlock -and $null -eq $__sma.Ast.DynamicParamBlock -and
    $null -ne $__sma.Ast.EndBlock -and $__sma.Ast.EndBlock.Statements.Count -eq 1 -and
    $__sma.Ast.EndBlock.Statements[0] -is
        [System.Management.Automation.Language.FunctionDefinitionAst]) {
    $__sma.Definition = $__sma.Ast.EndBlock.Statements[0].Name
}

# A converted workflow runs from a file of its own, so that PowerShell runs it as a script.
$__sma.RunPath = $__sma.ScriptPath
if ($__sma.IsWorkflow) {
    $__sma.RunPath = $__sma.Settings['workflow_path']
    try {
        [System.IO.File]::WriteAllText($__sma.RunPath, $__sma.Converted, $__sma.Utf8)
    } catch {
        __SmaFail "sma: cannot write the converted workflow: $($_.Exception.Message)"
    }
}

# --- run -------------------------------------------------------------------------------------

try {
    $__sma.Runspace = __SmaOpenRunspace
} catch {
    $reason = $_.Exception.GetBaseException().Message
    __SmaFail "sma: cannot prepare the runbook's runspace: $reason"
}
try {
    __SmaPassSecrets
    $__sma.ExitCode = __SmaRunbook
} finally {
    try { $null = __SmaCall 'Close-SmaRecordChannel' } catch { }
    [Console]::Out.Flush()
    [Console]::Error.Flush()
}
exit $__sma.ExitCode
