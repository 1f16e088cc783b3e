# SmaTools: runbooks (import, publish, start).

function Get-SmaRunbook {
    <#
    .SYNOPSIS
    Runbooks: all of them, or one by name.
    #>
    [CmdletBinding()]
    param([Parameter(Position = 0)][string]$Name, [string]$WebServiceEndpoint, [int]$Port)
    try {
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        if ($Name) { return Invoke-SmaApi $sma GET "/runbooks/$([uri]::EscapeDataString($Name))" }
        Get-SmaPagedItem $sma '/runbooks'
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Import-SmaRunbook {
    <#
    .SYNOPSIS
    Creates a runbook from a file, or replaces its draft when it exists; -Publish publishes it.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param([Parameter(Mandatory, Position = 0)][string]$Path,
          [string]$Name, [ValidateSet('python', 'bash', 'powershell')][string]$Type,
          [switch]$Publish, [string]$WebServiceEndpoint, [int]$Port)
    try {
        $file = Get-Item -LiteralPath $Path -ErrorAction Stop
        if (-not $Name) { $Name = $file.BaseName }
        $kind = $Type  # not $Type itself: its ValidateSet would refuse $null first
        if (-not $kind) {
            $types = @{ '.py' = 'python'; '.sh' = 'bash'; '.ps1' = 'powershell' }
            $kind = $types[$file.Extension.ToLowerInvariant()]
            if (-not $kind) { throw "Cannot tell the runbook type of $($file.Name): give -Type." }
        }
        if (-not $PSCmdlet.ShouldProcess("runbook '$Name' from $($file.FullName)", 'Import')) {
            return
        }
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        $content = Get-Content -LiteralPath $file.FullName -Raw -Encoding utf8 -ErrorAction Stop
        $item = "/runbooks/$([uri]::EscapeDataString($Name))"
        try {
            $create = @{ name = $Name; runbook_type = $kind; content = $content }
            $null = Invoke-SmaApi $sma POST '/runbooks' $create
        } catch {
            if ((Get-SmaErrorCode $_) -ne 409) { throw }  # 409: it exists, so its draft changes
            $null = Invoke-SmaApi $sma PUT "$item/draft" @{ content = $content }
        }
        if ($Publish) { $null = Publish-SmaRunbook -Name $Name -WebServiceEndpoint $sma.Url }
        Invoke-SmaApi $sma GET $item
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Publish-SmaRunbook {
    <#
    .SYNOPSIS
    Publishes a runbook's draft as its new version.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param([Parameter(Mandatory, Position = 0)][string]$Name,
          [string]$WebServiceEndpoint, [int]$Port)
    if (-not $PSCmdlet.ShouldProcess("runbook '$Name'", 'Publish')) { return }
    try {
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        Invoke-SmaApi $sma POST "/runbooks/$([uri]::EscapeDataString($Name))/publish"
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Start-SmaRunbook {
    <#
    .SYNOPSIS
    Starts a runbook's published version: the job's id, or with -Wait the job's output.
    .DESCRIPTION
    The call SMA's module and sma's jobs know: -Name, -Parameters, -Wait, -WorkerGroup,
    -TimeoutSeconds. With -Wait, a job that ends other than Completed is an error naming
    its status and reason; its output is each Output record's value, else its text.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param([Parameter(Mandatory, Position = 0)][Alias('RunbookName')][string]$Name,
          [Parameter(Position = 1)][System.Collections.IDictionary]$Parameters = @{},
          [switch]$Wait, [string]$WorkerGroup, [int]$TimeoutSeconds = 0,
          [string]$WebServiceEndpoint, [int]$Port)
    if (-not $PSCmdlet.ShouldProcess("runbook '$Name'", 'Start')) { return }
    try {
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        $body = @{ parameters = $Parameters }
        if ($WorkerGroup) { $body.worker_group = $WorkerGroup }
        $job = Invoke-SmaApi $sma POST "/runbooks/$([uri]::EscapeDataString($Name))/start" $body
        if (-not $Wait) { return $job.id }
        $job = Wait-SmaJob $sma $job $TimeoutSeconds
        if ($job.status -ne 'Completed') {
            $reason = if ($job.exception) { $job.exception } else { $job.status_reason }
            throw "Job $($job.id) ($Name) ended $($job.status): $reason"
        }
        foreach ($record in (Get-SmaRecord $sma $job.id -Stream Output)) {
            if ($null -ne $record.value) { $record.value } else { $record.text }
        }
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}
