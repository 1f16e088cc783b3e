<#
.SYNOPSIS
Runs one PowerShell runbook for an sma worker and maps PowerShell's streams to SMA's.

.DESCRIPTION
pwsh -NoLogo -NoProfile -NonInteractive -File SmaHost.ps1
     -ScriptPath <runbook.ps1> -ParametersPath <parameters.json>

- Output: strings, numbers and booleans go to stdout, one line per line; any other object is
  a typed Output record (its data as "value", its formatted text as "text"). Write-Host and
  Write-Information go to stdout too.
- Errors (non-terminating) go to stderr, one line per line of their message.
- Warning, Verbose, Debug and Progress become records on the record channel (the descriptor
  whose number is in $env:SMA_RECORD_FD: a second descriptor of the stdout pipe, so records
  and lines arrive in the order they were written; see SmaRunbook.psm1); Verbose, Debug and
  Progress only when SMA_LOG_VERBOSE / SMA_LOG_DEBUG / SMA_LOG_PROGRESS is 1.
- Exit code: 0 when the runbook ends, 1 when it fails with a terminating error (the message
  and the runbook's stack go to stderr), N when it calls `exit N`.

A runbook that is a single `workflow Name { ... }` (SMA's style) runs as a function of that
name: PowerShell 7 has no workflows, so `workflow` becomes `function`, `foreach -parallel`
becomes `foreach`, `$using:x` and `$workflow:x` become `$x`, and InlineScript / parallel /
sequence blocks run in order (SmaRunbook.psm1). A script that is a single `function` is
called the same way; any other script runs as it is.
#>
param(
    [Parameter(Mandatory)][string]$ScriptPath,
    [Parameter(Mandatory)][string]$ParametersPath
)

# The runbook sees the host's variables through dynamic scoping: keep them in one table with
# an unlikely name, and take the parameters of this script out of its way.
$__sma = @{
    ScriptPath     = $ScriptPath
    ParametersPath = $ParametersPath
    LogVerbose     = $env:SMA_LOG_VERBOSE -eq '1'
    LogDebug       = $env:SMA_LOG_DEBUG -eq '1'
    LogProgress    = $env:SMA_LOG_PROGRESS -eq '1'
    ExitCode       = 0
}
Remove-Variable -Name ScriptPath, ParametersPath -Scope Script

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
    __SmaWriteLines ([Console]::Error) $Message
    [Console]::Error.Flush()
    exit 1
}

# --- the runtime module ----------------------------------------------------------------------

try {
    $__sma.Module = Import-Module (Join-Path $PSScriptRoot 'SmaRunbook/SmaRunbook.psm1') -Global `
        -DisableNameChecking -PassThru -Force
} catch {
    __SmaFail "sma: cannot load SmaRunbook.psm1: $($_.Exception.Message)"
}
$__sma.WriteRecord = & $__sma.Module { ${function:Write-SmaRecord} }
$__sma.ToData = & $__sma.Module { ${function:ConvertTo-SmaData} }

# --- parameters ------------------------------------------------------------------------------

function __SmaFromJson($Element) {
    # a System.Text.Json element as PowerShell values; not ConvertFrom-Json, which turns
    # date-like strings into DateTime (a [string] parameter would then get another text)
    switch ([string]$Element.ValueKind) {
        'Object' {
            $table = @{}
            foreach ($property in $Element.EnumerateObject()) {
                $table[$property.Name] = __SmaFromJson $property.Value
            }
            return $table
        }
        'Array' {
            $list = [System.Collections.Generic.List[object]]::new()
            foreach ($item in $Element.EnumerateArray()) { $list.Add((__SmaFromJson $item)) }
            return , $list.ToArray()
        }
        'String' { return $Element.GetString() }
        'Number' {
            $long = [long]0
            if ($Element.TryGetInt64([ref]$long)) { return $long }
            return $Element.GetDouble()
        }
        'True' { return $true }
        'False' { return $false }
        default { return $null }
    }
}

try {
    $__sma.Json = [System.IO.File]::ReadAllText($__sma.ParametersPath, $__sma.Utf8)
    try {
        Add-Type -AssemblyName System.Text.Json -ErrorAction Ignore
        $__sma.Document = [System.Text.Json.JsonDocument]::Parse($__sma.Json,
            [System.Text.Json.JsonDocumentOptions]::new())
    } catch {
        $__sma.Document = $null  # no System.Text.Json here: ConvertFrom-Json will do
    }
    if ($null -ne $__sma.Document) {
        if ([string]$__sma.Document.RootElement.ValueKind -ne 'Object') {
            throw 'not a JSON object'
        }
        $__sma_parameters = __SmaFromJson $__sma.Document.RootElement
    } else {
        $__sma_parameters = ConvertFrom-Json -InputObject $__sma.Json -AsHashtable
        if ($__sma_parameters -isnot [System.Collections.IDictionary]) {
            throw 'not a JSON object'
        }
    }
} catch {
    __SmaFail "sma: cannot read the parameters ($($__sma.ParametersPath)): $($_.Exception.Message)"
}

# --- the runbook -----------------------------------------------------------------------------

function __SmaParse([string]$Text) {
    $tokens = $null
    $errors = $null
    $ast = [System.Management.Automation.Language.Parser]::ParseInput($Text, $__sma.ScriptPath,
        [ref]$tokens, [ref]$errors)
    return @{ Ast = $ast; Tokens = $tokens; Errors = $errors }
}

function __SmaWorkflowEdits($Tokens, [System.Collections.Generic.List[object]]$Edits) {
    # What makes an SMA workflow a PowerShell 7 function, as (offset, length, text) edits.
    $keywords = @{ InlineScript = 'Invoke-SmaInlineScript'; Parallel = 'Invoke-SmaParallel';
                   Sequence = 'Invoke-SmaSequence' }
    for ($i = 0; $i -lt $Tokens.Count; $i++) {
        $token = $Tokens[$i]
        $kind = [string]$token.Kind
        $start = $token.Extent.StartOffset
        $length = $token.Extent.EndOffset - $start
        if ($kind -eq 'Workflow') {
            $Edits.Add(@($start, $length, 'function'))
        } elseif ($keywords.ContainsKey($kind)) {
            $Edits.Add(@($start, $length, $keywords[$kind]))
        } elseif ($kind -eq 'Foreach') {
            # foreach -parallel [-throttlelimit N] (...): the flags go, the loop stays
            $j = $i + 1
            while ($j -lt $Tokens.Count) {
                $flag = $Tokens[$j]
                $flagKind = [string]$flag.Kind
                $isFlag = $flagKind -eq 'Parameter' -and
                    $flag.ParameterName -in 'parallel', 'throttlelimit'
                $isLimit = $flagKind -eq 'Number' -and $j -gt $i + 1 -and
                    $Tokens[$j - 1].ParameterName -eq 'throttlelimit'
                if (-not ($isFlag -or $isLimit)) { break }
                $flagStart = $flag.Extent.StartOffset
                $Edits.Add(@($flagStart, ($flag.Extent.EndOffset - $flagStart), ''))
                $j++
            }
        } elseif ($kind -in 'Variable', 'SplattedVariable' -and
                  $token.VariablePath.DriveName -in 'using', 'workflow') {
            $sigil = $token.Text.Substring(0, 1)
            $name = $token.VariablePath.UnqualifiedPath
            $braced = $token.Text.StartsWith($sigil + '{')
            $text = if ($braced) { $sigil + '{' + $name + '}' } else { $sigil + $name }
            $Edits.Add(@($start, $length, $text))
        }
        if ($token -is [System.Management.Automation.Language.StringExpandableToken] -and
            $null -ne $token.NestedTokens) {
            __SmaWorkflowEdits $token.NestedTokens $Edits
        }
    }
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
$__sma.Parsed = __SmaParse $__sma.Text
$__sma.IsWorkflow = @($__sma.Parsed.Tokens |
    Where-Object { [string]$_.Kind -eq 'Workflow' }).Count -gt 0
if ($__sma.IsWorkflow) {
    $__sma.Edits = [System.Collections.Generic.List[object]]::new()
    __SmaWorkflowEdits $__sma.Parsed.Tokens $__sma.Edits
    $__sma.Converted = $__sma.Text
    foreach ($edit in ($__sma.Edits | Sort-Object -Property { $_[0] } -Descending)) {
        $__sma.Converted = $__sma.Converted.Remove($edit[0], $edit[1]).Insert($edit[0], $edit[2])
    }
    $__sma.Parsed = __SmaParse $__sma.Converted
}
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
$__sma.Block = $__sma.Ast.GetScriptBlock()

# --- secret parameters -----------------------------------------------------------------------

# [SecureString] and [PSCredential] parameters are secret (sma keeps their values sealed and
# masks them in the output); their values arrive as JSON: a string becomes a SecureString, a
# credential is {username, password} or the name of a credential asset (as in Azure Automation).
function __SmaSecretValue($Parameter, $Value) {
    $type = $Parameter.StaticType
    if ($type -eq [System.Security.SecureString] -and $Value -is [string]) {
        return (ConvertTo-SecureString -String $Value -AsPlainText -Force)
    }
    if ($type -eq [System.Management.Automation.PSCredential]) {
        if ($Value -is [string]) { return (Get-AutomationPSCredential -Name $Value) }
        if ($Value -is [System.Collections.IDictionary]) {
            $secure = ConvertTo-SecureString -String ([string]$Value['password']) -AsPlainText -Force
            return [System.Management.Automation.PSCredential]::new([string]$Value['username'], $secure)
        }
    }
    return $Value
}

$__sma.ParameterAsts = @()
if ($null -ne $__sma.Definition) {
    $__sma.DefinitionAst = $__sma.Ast.EndBlock.Statements[0]
    if ($null -ne $__sma.DefinitionAst.Parameters) {
        $__sma.ParameterAsts = @($__sma.DefinitionAst.Parameters)
    } elseif ($null -ne $__sma.DefinitionAst.Body.ParamBlock) {
        $__sma.ParameterAsts = @($__sma.DefinitionAst.Body.ParamBlock.Parameters)
    }
} elseif ($null -ne $__sma.Ast.ParamBlock) {
    $__sma.ParameterAsts = @($__sma.Ast.ParamBlock.Parameters)
}
$__sma.SecretTypes = @([System.Security.SecureString], [System.Management.Automation.PSCredential])
foreach ($__sma_parameter in $__sma.ParameterAsts) {
    # only these: a function's return would unroll the arrays of any other parameter
    if ($__sma_parameter.StaticType -notin $__sma.SecretTypes) { continue }
    $__sma.Name = $__sma_parameter.Name.VariablePath.UserPath
    if (-not $__sma_parameters.Contains($__sma.Name)) { continue }
    try {
        $__sma_parameters[$__sma.Name] = __SmaSecretValue $__sma_parameter $__sma_parameters[$__sma.Name]
    } catch {
        __SmaFail "sma: cannot pass parameter $($__sma.Name): $($_.Exception.Message)"
    }
}
Remove-Variable -Name __sma_parameter -ErrorAction Ignore

# --- streams ---------------------------------------------------------------------------------

$__sma.Route = {
    process {
        $item = $_
        if ($null -eq $item) { return }
        try {
            if ($item -is [System.Management.Automation.ErrorRecord]) {
                __SmaWriteLines ([Console]::Error) $item.ToString()
            } elseif ($item -is [System.Management.Automation.WarningRecord]) {
                & $__sma.WriteRecord ([ordered]@{ stream = 'Warning'; text = $item.Message })
            } elseif ($item -is [System.Management.Automation.VerboseRecord]) {
                if ($__sma.LogVerbose) {
                    & $__sma.WriteRecord ([ordered]@{ stream = 'Verbose'; text = $item.Message })
                }
            } elseif ($item -is [System.Management.Automation.DebugRecord]) {
                if ($__sma.LogDebug) {
                    & $__sma.WriteRecord ([ordered]@{ stream = 'Debug'; text = $item.Message })
                }
            } elseif ($item -is [System.Management.Automation.InformationRecord]) {
                __SmaWriteLines ([Console]::Out) ([string]$item.MessageData)
            } elseif ($item -is [System.Management.Automation.ProgressRecord]) {
                if ($__sma.LogProgress) {
                    $percent = $null
                    if ($item.PercentComplete -ge 0) { $percent = $item.PercentComplete }
                    & $__sma.WriteRecord ([ordered]@{
                        stream = 'Progress'
                        text   = "$($item.Activity): $($item.StatusDescription)"
                        value  = [ordered]@{ activity = $item.Activity
                                             status = $item.StatusDescription; percent = $percent }
                    })
                }
            } else {
                $type = $item.GetType()
                if ($item -is [string] -or $type.IsPrimitive -or $type.IsEnum -or
                    $item -is [decimal] -or $item -is [System.Numerics.BigInteger]) {
                    __SmaWriteLines ([Console]::Out) ([string]$item)
                } else {
                    $data = & $__sma.ToData $item
                    $valueJson = ConvertTo-Json -InputObject $data -Compress -Depth 100 `
                        -WarningAction Ignore
                    if ($null -eq $data) { $valueJson = 'null' }
                    $lines = (Out-String -InputObject $item -Width 160) -split '\r?\n' |
                        ForEach-Object { $_.TrimEnd() }
                    $text = ($lines -join "`n").Trim("`n")
                    & $__sma.WriteRecord ([ordered]@{ stream = 'Output'; text = $text }) `
                        -ValueJson $valueJson
                }
            }
        } catch {
            [Console]::Error.WriteLine("sma: cannot write an object of the runbook: $_")
        }
    }
}

# --- run -------------------------------------------------------------------------------------

$VerbosePreference = if ($__sma.LogVerbose) { 'Continue' } else { 'SilentlyContinue' }
$DebugPreference = if ($__sma.LogDebug) { 'Continue' } else { 'SilentlyContinue' }
$ProgressPreference = if ($__sma.LogProgress) { 'Continue' } else { 'SilentlyContinue' }
$InformationPreference = 'Continue'
$WarningPreference = 'Continue'
$jobId = [guid]::Empty
if ([guid]::TryParse([string]$env:SMA_JOB_ID, [ref]$jobId)) {
    $PSPrivateMetadata = @{ JobId = $jobId }  # what SMA runbooks read their job id from
}
Remove-Variable -Name jobId

try {
    $ErrorActionPreference = 'Continue'  # the runbook's own default
    if ($null -ne $__sma.Definition) {
        . $__sma.Block  # defines the workflow (now a function) here
        & $__sma.Definition @__sma_parameters *>&1 | & $__sma.Route
    } else {
        & $__sma.Block @__sma_parameters *>&1 | & $__sma.Route
    }
} catch {
    # a terminating error: its message, then where it happened in the runbook
    $__sma.ExitCode = 1
    $record = $_
    [Console]::Out.Flush()
    __SmaWriteLines ([Console]::Error) $record.ToString()
    $stack = @(([string]$record.ScriptStackTrace) -split '\r?\n' | Where-Object {
        $_ -and $_ -notmatch 'SmaHost\.ps1|SmaRunbook\.psm1|<No file>'
    })
    if ($stack.Count -eq 0 -and $record.InvocationInfo -and $record.InvocationInfo.ScriptName -and
        $record.InvocationInfo.ScriptName -notmatch 'SmaHost\.ps1|SmaRunbook\.psm1') {
        $at = $record.InvocationInfo
        $stack = @("at $($at.ScriptName): line $($at.ScriptLineNumber)")
    }
    foreach ($line in $stack) { [Console]::Error.WriteLine($line) }
} finally {
    # also reached when the runbook calls `exit N`, which then ends this script with N
    & $__sma.Module { Close-SmaRecordChannel }
    [Console]::Out.Flush()
    [Console]::Error.Flush()
}
exit $__sma.ExitCode
