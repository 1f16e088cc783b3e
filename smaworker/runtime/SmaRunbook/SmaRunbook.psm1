# SmaRunbook: what a PowerShell runbook sees besides PowerShell itself.
#
# SmaHost.ps1 imports this module into the runspace the runbook runs in, before it runs.
# Public: Checkpoint-Workflow, Get-SmaCheckpoint, Suspend-Workflow; the asset cmdlets
# (Get-AutomationVariable, Set-AutomationVariable, Get-AutomationPSCredential,
# Get-AutomationConnection, Get-AutomationCertificate), Start-SmaRunbook and Get-SmaIdToken
# (SmaAssets.ps1);
# InlineScript / Parallel / Sequence, which let SMA workflows run as functions on
# PowerShell 7 (it has no workflows): their blocks run in order, in the runbook's process.
# Out-SmaStream is public only so that the host can end the runbook's pipeline with it; the
# host reaches the rest (Watch-SmaProgress, Set-SmaStreamsKept, Close-SmaRecordChannel)
# through the module.

. (Join-Path $PSScriptRoot 'SmaJson.ps1')
. (Join-Path $PSScriptRoot 'SmaStreams.ps1')
. (Join-Path $PSScriptRoot 'SmaAssets.ps1')

# the JSON text of the job's last checkpoint in this run ($null: none yet)
$script:Checkpoint = $null

function Checkpoint-Workflow {
    <#
    .SYNOPSIS
    Records a checkpoint of the job; -Data is kept with it (SMA's cmdlet takes no arguments).
    .DESCRIPTION
    A job suspended, or resumed after its worker was lost, runs the runbook again from its
    start; Get-SmaCheckpoint then gives the -Data of the last checkpoint.
    #>
    [CmdletBinding()]
    param([Parameter(Position = 0)]$Data = $null)
    $record = [ordered]@{ type = 'checkpoint'; data = $null }
    $record['data'] = ConvertTo-SmaData $Data
    Write-SmaRecord $record
    $script:Checkpoint = ConvertTo-Json -InputObject $record['data'] -Compress -Depth 100 `
        -WarningAction Ignore
}

function Get-SmaCheckpoint {
    <#
    .SYNOPSIS
    The -Data of the job's last Checkpoint-Workflow, or $null on a first run.
    .DESCRIPTION
    As JSON gives it back: objects are hashtables, arrays stay arrays (one of one item
    too), strings stay strings (an ISO date is not made a DateTime), integers are [long].
    The same in the run that took the checkpoint and in a run resumed from it.
    #>
    [CmdletBinding()]
    param()
    $json = $script:Checkpoint
    if ($null -eq $json) {
        $path = $env:SMA_CHECKPOINT_FILE
        if (-not $path -or -not (Test-Path -LiteralPath $path)) { return $null }
        $json = [System.IO.File]::ReadAllText($path, $script:Utf8)
    }
    ConvertFrom-SmaJson $json  # as a statement: an array is not unrolled
}

function Suspend-Workflow {
    <#
    .SYNOPSIS
    Suspends the job here, as SMA's Suspend-Workflow; -Data is checkpointed first.
    .DESCRIPTION
    The job's worker ends it Suspended, with its last checkpoint, as when a user suspends
    it; this call never returns.
    Resumed, the runbook runs again from its start (PowerShell 7 has no workflows to
    continue inside), with Get-SmaCheckpoint giving the last checkpoint's data: make the
    call depend on it, e.g.
        if ((Get-SmaCheckpoint).Stage -ne 'waited') {
            Suspend-Workflow -Data @{ Stage = 'waited' }
        }
    Without -Data the last checkpoint stays as it is.
    #>
    [CmdletBinding()]
    param([Parameter(Position = 0)]$Data)
    Open-SmaRecordChannel
    if ($null -eq $script:Channel) {
        throw 'Suspend-Workflow works only in an sma job (SMA_RECORD_FD is not set).'
    }
    if ($PSBoundParameters.ContainsKey('Data')) { Checkpoint-Workflow -Data $Data }
    Write-SmaRecord ([ordered]@{ type = 'suspend' })
    # the worker reads it at once and ends this process (SIGTERM, then SIGKILL): nothing
    # after this call may run, however long that takes
    while ($true) { Start-Sleep -Seconds 1 }
}

function Invoke-SmaInlineScript {
    <#
    .SYNOPSIS
    A workflow's InlineScript { }: runs the block here, in a scope of its own.
    #>
    param(
        [Parameter(Mandatory, Position = 0)][scriptblock]$ScriptBlock,
        [Parameter(ValueFromRemainingArguments)]$Remaining
    )
    if ($Remaining) {
        # -PSComputerName and friends would run it elsewhere; running it here instead is wrong
        throw [System.NotSupportedException]::new(
            "InlineScript activity parameters ($($Remaining -join ' ')) are not supported: " +
            'PowerShell 7 has no workflows; use Invoke-Command for remote work.')
    }
    & $ScriptBlock
}

function Invoke-SmaParallel {
    <#
    .SYNOPSIS
    A workflow's parallel { }: runs its statements one after the other, in the caller's scope.
    #>
    param([Parameter(Mandatory, Position = 0)][scriptblock]$ScriptBlock)
    . $ScriptBlock
}

function Invoke-SmaSequence {
    <#
    .SYNOPSIS
    A workflow's sequence { }: runs its statements in order, in the caller's scope.
    #>
    param([Parameter(Mandatory, Position = 0)][scriptblock]$ScriptBlock)
    . $ScriptBlock
}

Set-Alias -Name InlineScript -Value Invoke-SmaInlineScript
Set-Alias -Name Parallel -Value Invoke-SmaParallel
Set-Alias -Name Sequence -Value Invoke-SmaSequence

Export-ModuleMember -Function Checkpoint-Workflow, Get-SmaCheckpoint, Suspend-Workflow,
    Start-SmaRunbook, Get-AutomationVariable, Set-AutomationVariable,
    Get-AutomationPSCredential, Get-AutomationConnection, Get-AutomationCertificate,
    Get-SmaIdToken, Invoke-SmaInlineScript, Invoke-SmaParallel, Invoke-SmaSequence, Out-SmaStream `
    -Alias InlineScript, Parallel, Sequence
