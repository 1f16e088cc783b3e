# SmaRunbook: what a PowerShell runbook sees besides PowerShell itself.
#
# SmaHost.ps1 imports this module globally before the runbook runs. Records go as one JSON
# object per line to the file descriptor whose number is in $env:SMA_RECORD_FD (the
# worker's record channel: a second descriptor of the job's stdout pipe, so records keep
# their place among printed lines), each after the character 0x1E and $env:SMA_RECORD_TAG;
# without it (a runbook run by hand) they are printed for people.
#
# Public: Checkpoint-Workflow, Get-SmaCheckpoint, Write-Progress (replaces the cmdlet so progress becomes records),
# and InlineScript / Parallel / Sequence, which let SMA workflows run as functions on
# PowerShell 7 (it has no workflows): their blocks run in order, in the runbook's process.
# Internal (the host reaches them through the module): Write-SmaRecord, ConvertTo-SmaData,
# Close-SmaRecordChannel.

$script:Channel = $null
$script:ChannelOpened = $false
$script:Utf8 = [System.Text.UTF8Encoding]::new($false)
$script:Prefix = [string][char]0x1E + [string]$env:SMA_RECORD_TAG

function Open-SmaRecordChannel {
    if ($script:ChannelOpened) { return }
    $script:ChannelOpened = $true
    $fd = 0
    if (-not [int]::TryParse([string]$env:SMA_RECORD_FD, [ref]$fd) -or $fd -lt 0) { return }
    $stream = $null
    try {
        # the inherited descriptor itself; ownsHandle $false: the worker's pipe, closed at exit
        $handle = [Microsoft.Win32.SafeHandles.SafeFileHandle]::new([IntPtr]$fd, $false)
        $stream = [System.IO.FileStream]::new($handle, [System.IO.FileAccess]::Write, 1)
    } catch {
        try {
            $stream = [System.IO.FileStream]::new("/dev/fd/$fd", [System.IO.FileMode]::Open,
                [System.IO.FileAccess]::Write, [System.IO.FileShare]::ReadWrite, 1)
        } catch {
            [Console]::Error.WriteLine("sma: cannot open the record channel (fd $fd): $_")
            return
        }
    }
    $writer = [System.IO.StreamWriter]::new($stream, $script:Utf8)
    $writer.AutoFlush = $true
    $writer.NewLine = "`n"
    $script:Channel = [System.IO.TextWriter]::Synchronized($writer)
}

function Close-SmaRecordChannel {
    if ($null -ne $script:Channel) {
        try { $script:Channel.Flush(); $script:Channel.Dispose() } catch { }
        $script:Channel = $null
    }
}

function Write-SmaRecord {
    # One record: a dictionary of plain data (see ConvertTo-SmaData). -ValueJson adds a
    # "value" member that is already JSON text.
    param(
        [Parameter(Mandatory, Position = 0)][System.Collections.IDictionary]$Record,
        [string]$ValueJson
    )
    $json = ConvertTo-Json -InputObject $Record -Compress -Depth 100 -WarningAction Ignore
    if ($ValueJson) {
        $json = $json.Substring(0, $json.Length - 1) + ',"value":' + $ValueJson + '}'
    }
    Open-SmaRecordChannel
    [Console]::Out.Flush()  # what was printed before the record is written first
    if ($null -ne $script:Channel) {
        try {
            $script:Channel.WriteLine($script:Prefix + $json)
            return
        } catch {
            # the worker stopped reading: say it once, then fall back to the console
            $script:Channel = $null
            [Console]::Error.WriteLine("sma: the record channel is closed: $($_.Exception.Message)")
        }
    }
    $label = if ($Record.Contains('stream')) { $Record['stream'] } else { $Record['type'] }
    $text = $json
    if ($Record.Contains('text')) {
        $text = $Record['text']
    } elseif ($ValueJson) {
        $text = $ValueJson
    }
    if ($label -eq 'Output') {
        [Console]::Out.WriteLine($text)
    } else {
        [Console]::Error.WriteLine("[$label] $text")
    }
}

function ConvertTo-SmaData {
    # Any PowerShell value as plain data that ConvertTo-Json renders faithfully and quickly:
    # dictionaries, lists, strings, numbers, booleans, $null. Dates become ISO 8601 strings.
    # Data containers are followed 20 levels deep; other .NET objects are shown by their
    # properties at the first levels and by their ToString() deeper down.
    param([Parameter(Position = 0)]$InputObject, [int]$Depth = 0)

    if ($null -eq $InputObject) { return $null }
    $value = $InputObject
    if ($value -is [System.Management.Automation.PSObject]) { $value = $value.PSObject.BaseObject }
    if ($value -is [string] -or $value -is [char]) { return [string]$value }
    if ($value -is [bool]) { return [bool]$value }
    if ($value -is [enum]) { return $value.ToString() }
    if ($value -is [double] -or $value -is [single]) {
        if ([double]::IsNaN($value) -or [double]::IsInfinity($value)) { return $value.ToString() }
        return $value
    }
    if ($value -is [decimal] -or
        ($value -is [System.ValueType] -and $value.GetType().IsPrimitive)) {
        return $value
    }
    if ($value -is [System.Numerics.BigInteger]) { return $value.ToString() }
    if ($value -is [datetime] -or $value -is [System.DateTimeOffset]) {
        return $value.ToString('o', [System.Globalization.CultureInfo]::InvariantCulture)
    }
    if ($value -is [System.Management.Automation.SwitchParameter]) { return $value.IsPresent }
    if ($value -is [guid] -or $value -is [uri] -or $value -is [version] -or
        $value -is [timespan] -or $value -is [scriptblock]) {
        return $value.ToString()
    }
    if ($Depth -ge 20) { return $value.ToString() }
    $next = $Depth + 1

    if ($value -is [System.Collections.IDictionary]) {
        $map = [ordered]@{}
        foreach ($key in $value.Keys) {
            $map[[string]$key] = ConvertTo-SmaData $value[$key] -Depth $next
        }
        return $map
    }
    if ($value -is [System.Management.Automation.PSCustomObject]) {
        $map = [ordered]@{}
        foreach ($property in $InputObject.PSObject.Properties) {
            $map[$property.Name] = ConvertTo-SmaData $property.Value -Depth $next
        }
        return $map
    }
    if ($value -is [System.Collections.IEnumerable]) {
        $list = [System.Collections.Generic.List[object]]::new()
        foreach ($item in $value) { $list.Add((ConvertTo-SmaData $item -Depth $next)) }
        return , $list.ToArray()
    }
    if ($Depth -ge 2) { return $value.ToString() }
    $map = [ordered]@{}
    foreach ($property in $InputObject.PSObject.Properties) {
        if (-not $property.IsGettable) { continue }
        try {
            $map[$property.Name] = ConvertTo-SmaData $property.Value -Depth $next
        } catch {
            continue  # a property whose getter throws is left out
        }
    }
    return $map
}

function Checkpoint-Workflow {
    <#
    .SYNOPSIS
    Records a checkpoint of the job; -Data is kept with it (SMA's cmdlet takes no arguments).
    #>
    [CmdletBinding()]
    param([Parameter(Position = 0)]$Data = $null)
    $record = [ordered]@{ type = 'checkpoint'; data = $null }
    $record['data'] = ConvertTo-SmaData $Data
    Write-SmaRecord $record
}

function Write-Progress {
    <#
    .SYNOPSIS
    Records progress as a Progress record (kept when the runbook logs progress).
    #>
    [CmdletBinding()]
    param(
        [Parameter(Position = 0)][string]$Activity,
        [Parameter(Position = 1)][string]$Status,
        [Parameter(Position = 2)][int]$Id = 0,
        [int]$PercentComplete = -1,
        [int]$SecondsRemaining = -1,
        [string]$CurrentOperation,
        [int]$ParentId = -1,
        [switch]$Completed,
        [int]$SourceId = 0
    )
    if ($env:SMA_LOG_PROGRESS -ne '1') { return }
    # the caller's preference (a module function would otherwise see only the global one)
    $preference = $PSCmdlet.SessionState.PSVariable.GetValue('ProgressPreference')
    if ([string]$preference -in 'SilentlyContinue', 'Ignore') { return }
    if ($Completed) {
        if (-not $Status) { $Status = 'Completed' }
        $PercentComplete = 100
    }
    $percent = if ($PercentComplete -ge 0) { $PercentComplete } else { $null }
    $text = if ($Status) { "${Activity}: $Status" } else { $Activity }
    if ($null -ne $percent) { $text += " ($percent%)" }
    $value = [ordered]@{ activity = $Activity; status = $Status; percent = $percent }
    if ($CurrentOperation) { $value['operation'] = $CurrentOperation }
    Write-SmaRecord ([ordered]@{ stream = 'Progress'; text = $text; value = $value })
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

function Get-SmaCheckpoint {
    <#
    .SYNOPSIS
    The -Data of the job's last Checkpoint-Workflow, or $null on a first run.
    #>
    [CmdletBinding()]
    param()
    $path = $env:SMA_CHECKPOINT_FILE
    if (-not $path -or -not (Test-Path -LiteralPath $path)) { return $null }
    return (Get-Content -LiteralPath $path -Raw -Encoding utf8 | ConvertFrom-Json)
}

# --- assets, through the job's token (SMA_JOB_TOKEN) ------------------------------------

function Invoke-SmaRuntime {
    param([string]$Method, [string]$Path, $Body, $RawBody)
    if (-not $env:SMA_API_URL -or -not $env:SMA_JOB_TOKEN) {
        throw "Assets are available only inside an sma job (SMA_API_URL and SMA_JOB_TOKEN are not set)."
    }
    $uri = $env:SMA_API_URL.TrimEnd('/') + '/api/v1/runtime/' + $Path
    $params = @{
        Method = $Method; Uri = $uri; ContentType = 'application/json'
        Headers = @{ Authorization = "Bearer $($env:SMA_JOB_TOKEN)" }
    }
    if ($PSBoundParameters.ContainsKey('Body')) {
        $params.Body = ConvertTo-Json -InputObject @{ value = $Body } -Compress -Depth 100
    }
    if ($PSBoundParameters.ContainsKey('RawBody')) {
        $params.Body = ConvertTo-Json -InputObject $RawBody -Compress -Depth 100
    }
    try {
        return Invoke-RestMethod @params
    } catch {
        $status = $_.Exception.Response.StatusCode.value__
        $message = $_.ErrorDetails.Message
        try { $message = ($message | ConvertFrom-Json).message } catch { }
        if ($status -eq 404) { throw "AutomationAssetNotFound: $message" }
        throw "AutomationAssetError: $status $message"
    }
}

function Write-SmaMask {
    # tell the worker to write *** for this secret from now on
    param($Value)
    if ($null -eq $Value) { return }
    if ($Value -isnot [string]) { $Value = ConvertTo-Json -InputObject $Value -Compress -Depth 100 }
    if ($Value.Length -gt 0) { Write-SmaRecord ([ordered]@{ type = 'mask'; value = $Value }) }
}

function Get-AutomationVariable {
    <#
    .SYNOPSIS
    The value of a variable asset.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name)
    $body = Invoke-SmaRuntime GET "variables/$([uri]::EscapeDataString($Name))"
    if ($body.is_encrypted) { Write-SmaMask $body.value }
    return $body.value
}

function Set-AutomationVariable {
    <#
    .SYNOPSIS
    Sets the value of an existing variable asset.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name,
          [Parameter(Mandatory, Position = 1)][AllowNull()]$Value)
    $null = Invoke-SmaRuntime PUT "variables/$([uri]::EscapeDataString($Name))" $Value
}

function Get-AutomationPSCredential {
    <#
    .SYNOPSIS
    A credential asset as a PSCredential.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name)
    $body = Invoke-SmaRuntime GET "credentials/$([uri]::EscapeDataString($Name))"
    Write-SmaMask $body.password
    $secure = ConvertTo-SecureString -String $body.password -AsPlainText -Force
    return [System.Management.Automation.PSCredential]::new($body.username, $secure)
}

function Get-AutomationConnection {
    <#
    .SYNOPSIS
    A connection asset's fields, as a hashtable.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name)
    $body = Invoke-SmaRuntime GET "connections/$([uri]::EscapeDataString($Name))"
    $fields = @{}
    foreach ($p in $body.values.PSObject.Properties) { $fields[$p.Name] = $p.Value }
    foreach ($f in $body.encrypted_fields) { Write-SmaMask $fields[$f] }
    return $fields
}

function Get-AutomationCertificate {
    <#
    .SYNOPSIS
    A certificate asset as an X509Certificate2 (with its private key when exportable).
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name)
    $body = Invoke-SmaRuntime GET "certificates/$([uri]::EscapeDataString($Name))"
    $bytes = [Convert]::FromBase64String($body.data)
    return [System.Security.Cryptography.X509Certificates.X509Certificate2]::new($bytes)
}

function Start-SmaRunbook {
    <#
    .SYNOPSIS
    Starts a published runbook as a child of this job: its job id, or with -Wait its output.
    .DESCRIPTION
    A child waited on stops when this job is stopped. A child that ends other than
    Completed is an error naming its status and reason.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][Alias('RunbookName')][string]$Name,
          [Parameter(Position = 1)][hashtable]$Parameters = @{},
          [switch]$Wait,
          [string]$WorkerGroup,
          [int]$TimeoutSeconds = 0)
    $request = @{ runbook = $Name; parameters = $Parameters; wait = [bool]$Wait }
    if ($WorkerGroup) { $request.worker_group = $WorkerGroup }
    $job = Invoke-SmaRuntime POST 'jobs' -RawBody $request
    if (-not $Wait) { return $job.id }
    $deadline = if ($TimeoutSeconds -gt 0) { (Get-Date).AddSeconds($TimeoutSeconds) } else { $null }
    $pause = 50
    while ($true) {
        $job = Invoke-SmaRuntime GET "jobs/$($job.id)"
        if ($job.status -in 'Completed', 'Failed', 'Stopped', 'Suspended') { break }
        if ($deadline -and (Get-Date) -gt $deadline) {
            throw "Child job $($job.id) still $($job.status) after $TimeoutSeconds s."
        }
        Start-Sleep -Milliseconds $pause
        $pause = [Math]::Min($pause * 2, 1000)
    }
    if ($job.status -ne 'Completed') {
        $reason = if ($job.exception) { $job.exception } else { $job.status_reason }
        throw "Child job $($job.id) ($Name) ended $($job.status): $reason"
    }
    $out = Invoke-SmaRuntime GET "jobs/$($job.id)/output"
    foreach ($item in $out.items) {
        if ($null -ne $item.value) { $item.value } else { $item.text }
    }
}

Export-ModuleMember -Function Checkpoint-Workflow, Get-SmaCheckpoint, Start-SmaRunbook,
    Get-AutomationVariable, Set-AutomationVariable, Get-AutomationPSCredential,
    Get-AutomationConnection, Get-AutomationCertificate, Write-Progress, Invoke-SmaInlineScript,
    Invoke-SmaParallel, Invoke-SmaSequence -Alias InlineScript, Parallel, Sequence
