# SmaHost.ps1's run of the runbook, dot-sourced by it: the runspace, the secret parameters,
# the run itself and what its end means.
#
# Why a runspace of its own (in this process) rather than a script block of the host:
# - the runbook sees none of the host's variables and functions, and cannot change them;
# - its preference variables are that runspace's global ones, so the Write-Verbose of a
#   module it calls obeys them too (a script scope's would not reach a module);
# - it runs as a script file (`#Requires` holds), from a PowerShell instance whose
#   Streams.Progress receives the progress of every command: *>&1 merges streams 1 to 6,
#   and Progress is none of them (PowerShell cannot redirect it).
# The runspace shares this host ($Host), so Write-Host, $Host.UI and -NonInteractive's
# refusals are those of pwsh itself.

function __SmaOpenRunspace {
    $iss = [System.Management.Automation.Runspaces.InitialSessionState]::CreateDefault2()
    if ($IsWindows) { $iss.ExecutionPolicy = [Microsoft.PowerShell.ExecutionPolicy]::Bypass }
    $iss.ImportPSModule([string[]]@(Join-Path $PSScriptRoot 'SmaRunbook/SmaRunbook.psm1'))
    $runspace = [runspacefactory]::CreateRunspace($Host, $iss)
    $runspace.ThreadOptions = [System.Management.Automation.Runspaces.PSThreadOptions]::ReuseThread
    $runspace.Open()
    $variables = $runspace.SessionStateProxy
    $preferences = $__sma.Settings['preferences']  # the worker's, from the log settings
    foreach ($name in $preferences.Keys) {
        $value = [System.Management.Automation.ActionPreference]$preferences[$name]
        $variables.SetVariable($name, $value)
    }
    $variables.SetVariable('OutputEncoding', $__sma.Utf8)
    $jobId = [guid]::Empty
    if ([guid]::TryParse([string]$env:SMA_JOB_ID, [ref]$jobId)) {
        $variables.SetVariable('PSPrivateMetadata', @{ JobId = $jobId })  # SMA runbooks read it
    }
    return $runspace
}

function __SmaCall([string]$Script, [object[]]$Arguments = @()) {
    # $Script run in the runbook's runspace, inside its SmaRunbook module (where the private
    # functions are), with $Arguments as its $args; its output.
    $ps = [powershell]::Create()
    try {
        $ps.Runspace = $__sma.Runspace
        $null = $ps.AddScript("& (Get-Module SmaRunbook) { $Script } @args", $true)
        foreach ($argument in $Arguments) { $null = $ps.AddArgument($argument) }
        return $ps.Invoke()
    } finally {
        $ps.Dispose()
    }
}

# --- secret parameters -----------------------------------------------------------------------

# [SecureString] and [PSCredential] parameters are secret (sma keeps their values sealed and
# masks them in the output); their values arrive as JSON: a string becomes a SecureString, a
# credential is {username, password} or the name of a credential asset (as in SMA and Azure
# Automation). A secret parameter given no value whose default is a string literal gets that
# string the same way: PowerShell would ask for the credential's password, which
# -NonInteractive refuses.
function __SmaSecretValue($Parameter, $Value) {
    $type = $Parameter.StaticType
    if ($type -eq [securestring] -and $Value -is [string]) {
        if (-not $Value) { return [securestring]::new() }
        return (ConvertTo-SecureString -String $Value -AsPlainText -Force)
    }
    if ($type -eq [pscredential]) {
        if ($Value -is [string]) {
            return (__SmaCall 'Get-AutomationPSCredential -Name $args[0]' $Value)
        }
        if ($Value -is [System.Collections.IDictionary]) {
            $password = [string]$Value['password']
            $secure = if ($password) {
                ConvertTo-SecureString -String $password -AsPlainText -Force
            } else {
                [securestring]::new()
            }
            return [pscredential]::new([string]$Value['username'], $secure)
        }
    }
    return $Value
}

function __SmaStringDefault($Parameter) {
    # the default of a parameter when it is a string literal, else $null
    $default = $Parameter.DefaultValue
    if ($default -is [System.Management.Automation.Language.StringConstantExpressionAst]) {
        return $default.Value
    }
    if ($default -is [System.Management.Automation.Language.ExpandableStringExpressionAst] -and
        $default.NestedExpressions.Count -eq 0) {
        return $default.Value
    }
    return $null
}

function __SmaPassSecrets {
    $parameters = @()
    $ast = $__sma.Ast
    if ($null -ne $__sma.Definition) {
        $definition = $ast.EndBlock.Statements[0]
        if ($null -ne $definition.Parameters) {
            $parameters = @($definition.Parameters)
        } elseif ($null -ne $definition.Body.ParamBlock) {
            $parameters = @($definition.Body.ParamBlock.Parameters)
        }
    } elseif ($null -ne $ast.ParamBlock) {
        $parameters = @($ast.ParamBlock.Parameters)
    }
    foreach ($parameter in $parameters) {
        # only these: a function's return would unroll the arrays of any other parameter
        if ($parameter.StaticType -notin [securestring], [pscredential]) { continue }
        $name = $parameter.Name.VariablePath.UserPath
        if ($__sma.Parameters.Contains($name)) {
            $value = $__sma.Parameters[$name]
        } else {
            $value = __SmaStringDefault $parameter
            if ($null -eq $value) { continue }
        }
        try {
            $__sma.Parameters[$name] = __SmaSecretValue $parameter $value
        } catch {
            $reason = $_.Exception.GetBaseException().Message
            __SmaFail "sma: cannot pass parameter ${name}: $reason"
        }
    }
}

# --- the run ---------------------------------------------------------------------------------

function __SmaRethrowExit {
    # What pwsh -File does for its own script: the next script's `exit N` ends the invocation
    # with an ExitException, rather than only setting $LASTEXITCODE as a script called from
    # another one does (so a native command's exit code could not be told from it).
    # PowerShell has no public switch for it; $false where this PowerShell lacks it.
    $flags = [System.Reflection.BindingFlags]'Instance, NonPublic'
    try {
        $context = [runspace].GetProperty('ExecutionContext', $flags).GetValue($__sma.Runspace)
        $flag = $context.GetType().GetProperty('ScriptCommandProcessorShouldRethrowExit', $flags)
        $flag.SetValue($context, $true)
        return $true
    } catch {
        return $false
    }
}

function __SmaInvoke([powershell]$PowerShell) {
    # Its first command, all streams merged (*>&1), piped into Out-SmaStream; the exception
    # that ended it, or $null.
    $PowerShell.Runspace = $__sma.Runspace
    $PowerShell.Commands.Commands[0].MergeMyResults(
        [System.Management.Automation.Runspaces.PipelineResultTypes]::All,
        [System.Management.Automation.Runspaces.PipelineResultTypes]::Output)
    $null = $PowerShell.AddCommand('Out-SmaStream')
    $settings = [System.Management.Automation.PSInvocationSettings]::new()
    $settings.ExposeFlowControlExceptions = $true  # an `exit` comes out as an ExitException
    try {
        $null = $PowerShell.Invoke($null, $settings)
        return $null
    } catch {
        $failure = $_.Exception
        while ($failure -is [System.Management.Automation.MethodInvocationException] -and
               $null -ne $failure.InnerException) {
            $failure = $failure.InnerException
        }
        return $failure
    } finally {
        $PowerShell.Dispose()
    }
}

function __SmaRunbook {
    # Runs the runbook; its exit code.
    $run = [powershell]::Create()
    $null = __SmaCall 'Watch-SmaProgress $args[0]; Set-SmaStreamsKept $args[1]' `
        $run.Streams.Progress, $__sma.Settings['streams']
    $rethrows = $true  # functions let `exit` through by themselves
    $failure = $null
    if ($null -ne $__sma.Definition) {
        # the file defines the workflow (now a function) in the runspace's global scope
        $failure = __SmaInvoke ([powershell]::Create().AddCommand($__sma.RunPath, $false))
        $null = $run.AddCommand($__sma.Definition)
    } else {
        $null = $run.AddCommand($__sma.RunPath)
        # the modules its #Requires names, loaded now: their loading would otherwise come
        # between the flag below and the runbook, and could take it
        $requires = $__sma.Ast.ScriptRequirements
        if ($null -ne $requires -and $requires.RequiredModules.Count -gt 0) {
            try {
                $null = __SmaCall ('Import-Module -FullyQualifiedName $args[0] -Global ' +
                                   '-ErrorAction SilentlyContinue') (, @($requires.RequiredModules))
            } catch { }  # the runbook's own #Requires says what is missing
        }
        $rethrows = __SmaRethrowExit
    }
    if ($null -eq $failure) {
        $null = $run.AddParameters($__sma.Parameters)
        $failure = __SmaInvoke $run
    }
    if ($null -ne $failure) { return (__SmaFailureCode $failure) }
    $exits = $null -ne $__sma.Ast.Find(
        { param($node) $node -is [System.Management.Automation.Language.ExitStatementAst] }, $true)
    if (-not $rethrows -and $exits) {  # `exit N` only set $LASTEXITCODE: the best guess left
        return [int]$__sma.Runspace.SessionStateProxy.GetVariable('LASTEXITCODE')
    }
    return 0
}

function __SmaFailureCode($Failure) {
    # How a run that did not end by itself ends: its exit code; what went wrong to stderr.
    if ($Failure -is [System.Management.Automation.ExitException]) { return [int]$Failure.Argument }
    if ($Failure -is [System.Management.Automation.FlowControlException]) {
        return 0  # a `break` or `continue` outside any loop: the runbook just ends, as in pwsh
    }
    [Console]::Out.Flush()
    if ($Failure -isnot [System.Management.Automation.IContainsErrorRecord]) {
        __SmaWriteLines ([Console]::Error) $Failure.Message
        return 1
    }
    $record = $Failure.ErrorRecord
    $text = $record.ToString()
    $command = $record.InvocationInfo.MyCommand
    if ($Failure -is [System.Management.Automation.ParameterBindingException] -and
        $null -ne $command -and
        (($command.Name -eq $__sma.Definition) -or ($command.Source -eq $__sma.RunPath))) {
        # e.g. a value above [int]::MaxValue for an [int] parameter
        $text = "sma: the runbook's parameters cannot be bound: $text"
    }
    __SmaWriteLines ([Console]::Error) $text
    # then where it happened in the runbook (not in sma's own files)
    $sma = 'SmaHost\.ps1|SmaHostRun\.ps1|SmaRunbook[\\/]|<No file>'
    $stack = @(([string]$record.ScriptStackTrace) -split '\r?\n' |
        Where-Object { $_ -and $_ -notmatch $sma })
    $at = $record.InvocationInfo
    if ($stack.Count -eq 0 -and $at -and $at.ScriptName -and $at.ScriptName -notmatch $sma) {
        $stack = @("at $($at.ScriptName): line $($at.ScriptLineNumber)")
    }
    foreach ($line in $stack) { [Console]::Error.WriteLine($line) }
    return 1
}
