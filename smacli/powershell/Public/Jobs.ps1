# SmaTools: jobs (list, output, stop, suspend, resume).

function Get-SmaJob {
    <#
    .SYNOPSIS
    Jobs, newest first (filter by runbook or status), or one by id.
    #>
    [CmdletBinding()]
    param([Parameter(Position = 0)][string]$Id, [string]$RunbookName, [string[]]$Status,
          [string]$WebServiceEndpoint, [int]$Port)
    try {
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        if ($Id) { return Invoke-SmaApi $sma GET "/jobs/$([uri]::EscapeDataString($Id))" }
        $query = @()
        if ($RunbookName) { $query += "runbook=$([uri]::EscapeDataString($RunbookName))" }
        if ($Status) { $query += "status=$([uri]::EscapeDataString($Status -join ','))" }
        Get-SmaPagedItem $sma ('/jobs' + $(if ($query) { '?' + ($query -join '&') } else { '' }))
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Get-SmaJobOutput {
    <#
    .SYNOPSIS
    A job's records (-Stream Output, Error, Warning, Verbose, Progress, Debug), each with the
    attempt (run of the job) that wrote it; -Attempt N keeps that attempt's.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Id,
          [ValidateSet('Output', 'Error', 'Warning', 'Verbose', 'Progress', 'Debug')]
          [string[]]$Stream,
          [ValidateRange(1, 2147483647)][int]$Attempt, [string]$WebServiceEndpoint, [int]$Port)
    try {
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        Get-SmaRecord $sma $Id -Stream $Stream -Attempt $Attempt
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Stop-SmaJob {
    <#
    .SYNOPSIS
    Stops a job: its processes end and it ends Stopped (an error when it has finished).
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'Medium')]
    param([Parameter(Mandatory, Position = 0)][string]$Id,
          [string]$WebServiceEndpoint, [int]$Port)
    if (-not $PSCmdlet.ShouldProcess("job $Id", 'Stop')) { return }
    try {
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        Invoke-SmaApi $sma POST "/jobs/$([uri]::EscapeDataString($Id))/stop"
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Suspend-SmaJob {
    <#
    .SYNOPSIS
    Suspends a running job; Resume-SmaJob goes on from its last checkpoint.
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'Medium')]
    param([Parameter(Mandatory, Position = 0)][string]$Id,
          [string]$WebServiceEndpoint, [int]$Port)
    if (-not $PSCmdlet.ShouldProcess("job $Id", 'Suspend')) { return }
    try {
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        Invoke-SmaApi $sma POST "/jobs/$([uri]::EscapeDataString($Id))/suspend"
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Resume-SmaJob {
    <#
    .SYNOPSIS
    Resumes a suspended job from its last checkpoint (or from the start without one).
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param([Parameter(Mandatory, Position = 0)][string]$Id,
          [string]$WebServiceEndpoint, [int]$Port)
    if (-not $PSCmdlet.ShouldProcess("job $Id", 'Resume')) { return }
    try {
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        Invoke-SmaApi $sma POST "/jobs/$([uri]::EscapeDataString($Id))/resume"
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}
