# SmaTools: manage sma from PowerShell, over the same REST API as the `sma` command.
#
#   Import-Module ./smacli/powershell/SmaTools.psm1
#   Connect-Sma -Url http://127.0.0.1:8080 -Token (Read-Host -AsSecureString)
#   Import-SmaRunbook -Path ./hello.ps1 -Publish
#   Start-SmaRunbook -Name hello -Parameters @{ Name = 'sma' } -Wait
#
# The URL and token come from Connect-Sma, else from SMA_URL and SMA_TOKEN.

$script:SmaUrl = $null
$script:SmaToken = $null

function Connect-Sma {
    <#
    .SYNOPSIS
    Remembers the sma service and token for this session's Sma cmdlets.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory)][string]$Url,
          [Parameter(Mandatory)][System.Security.SecureString]$Token)
    $script:SmaUrl = $Url.TrimEnd('/')
    $script:SmaToken = [System.Net.NetworkCredential]::new('', $Token).Password
    $null = Invoke-SmaApi GET '/runbooks?limit=1'
}

function Invoke-SmaApi {
    param([string]$Method, [string]$Path, $Body)
    $url = if ($script:SmaUrl) { $script:SmaUrl } else { $env:SMA_URL }
    $token = if ($script:SmaToken) { $script:SmaToken } else { $env:SMA_TOKEN }
    if (-not $url -or -not $token) { throw 'Not connected: run Connect-Sma, or set SMA_URL and SMA_TOKEN.' }
    $params = @{
        Method = $Method; Uri = $url.TrimEnd('/') + '/api/v1' + $Path
        Headers = @{ Authorization = "Bearer $token" }; ContentType = 'application/json'
    }
    if ($PSBoundParameters.ContainsKey('Body')) {
        $params.Body = ConvertTo-Json -InputObject $Body -Compress -Depth 100
    }
    try {
        return Invoke-RestMethod @params
    } catch {
        $message = $_.ErrorDetails.Message
        try { $message = ($message | ConvertFrom-Json).message } catch { }
        if (-not $message) { $message = $_.Exception.Message }
        throw "sma: $message"
    }
}

function Get-SmaPaged {
    param([string]$Path)
    $cursor = $null
    do {
        $sep = if ($Path.Contains('?')) { '&' } else { '?' }
        $page = Invoke-SmaApi GET ($Path + $(if ($cursor) { "${sep}cursor=$([uri]::EscapeDataString($cursor))" } else { '' }))
        $page.items
        $cursor = $page.next_cursor
    } while ($cursor)
}

function Get-SmaRunbook {
    <#
    .SYNOPSIS
    Runbooks: all of them, or one by name.
    #>
    [CmdletBinding()]
    param([Parameter(Position = 0)][string]$Name)
    if ($Name) { return Invoke-SmaApi GET "/runbooks/$([uri]::EscapeDataString($Name))" }
    Get-SmaPaged '/runbooks'
}

function Import-SmaRunbook {
    <#
    .SYNOPSIS
    Creates a runbook from a file (or replaces its draft); -Publish publishes it.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Path,
          [string]$Name, [ValidateSet('python', 'bash', 'powershell')][string]$Type,
          [switch]$Publish)
    $file = Get-Item -LiteralPath $Path
    if (-not $Name) { $Name = $file.BaseName }
    if (-not $Type) {
        $Type = @{ '.py' = 'python'; '.sh' = 'bash'; '.ps1' = 'powershell' }[$file.Extension.ToLower()]
        if (-not $Type) { throw "Cannot tell the runbook type of $($file.Name): give -Type." }
    }
    $content = Get-Content -LiteralPath $Path -Raw
    try {
        $null = Invoke-SmaApi POST '/runbooks' @{ name = $Name; runbook_type = $Type; content = $content }
    } catch {
        if ("$_" -notmatch 'already exists') { throw }
        $null = Invoke-SmaApi PUT "/runbooks/$([uri]::EscapeDataString($Name))/draft" @{ content = $content }
    }
    if ($Publish) { $null = Publish-SmaRunbook -Name $Name }
    Get-SmaRunbook -Name $Name
}

function Publish-SmaRunbook {
    <#
    .SYNOPSIS
    Publishes a runbook's draft as its new version.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name)
    Invoke-SmaApi POST "/runbooks/$([uri]::EscapeDataString($Name))/publish"
}

function Start-SmaRunbook {
    <#
    .SYNOPSIS
    Starts a runbook's published version; -Wait returns the finished job.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name,
          [hashtable]$Parameters = @{}, [string]$WorkerGroup, [switch]$Wait)
    $body = @{ parameters = $Parameters }
    if ($WorkerGroup) { $body.worker_group = $WorkerGroup }
    $job = Invoke-SmaApi POST "/runbooks/$([uri]::EscapeDataString($Name))/start" $body
    if (-not $Wait) { return $job }
    $pause = 100
    while ($job.status -notin 'Completed', 'Failed', 'Stopped', 'Suspended') {
        Start-Sleep -Milliseconds $pause
        $pause = [Math]::Min($pause * 2, 2000)
        $job = Get-SmaJob -Id $job.id
    }
    $job
}

function Get-SmaJob {
    <#
    .SYNOPSIS
    Jobs, newest first (filter by runbook or status), or one by id.
    #>
    [CmdletBinding()]
    param([Parameter(Position = 0)][string]$Id, [string]$RunbookName, [string[]]$Status)
    if ($Id) { return Invoke-SmaApi GET "/jobs/$([uri]::EscapeDataString($Id))" }
    $query = @()
    if ($RunbookName) { $query += "runbook=$([uri]::EscapeDataString($RunbookName))" }
    if ($Status) { $query += "status=$([uri]::EscapeDataString($Status -join ','))" }
    Get-SmaPaged ('/jobs' + $(if ($query) { '?' + ($query -join '&') } else { '' }))
}

function Get-SmaJobOutput {
    <#
    .SYNOPSIS
    A job's records (-Stream Output, Error, Warning, Verbose, Progress, Debug), each with the
    attempt (run of the job) that wrote it; -Attempt N keeps that attempt's.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Id,
          [ValidateSet('Output', 'Error', 'Warning', 'Verbose', 'Progress', 'Debug')][string[]]$Stream,
          [ValidateRange(1, 2147483647)][int]$Attempt)
    $after = 0
    do {
        $path = "/jobs/$([uri]::EscapeDataString($Id))/streams?after_seq=$after&limit=5000"
        if ($Stream) { $path += "&stream=$($Stream -join ',')" }
        if ($Attempt) { $path += "&attempt=$Attempt" }
        $page = Invoke-SmaApi GET $path
        $page.items
        $after = $page.next_after_seq
    } while ($null -ne $after)
}

function Stop-SmaJob {
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Id)
    Invoke-SmaApi POST "/jobs/$([uri]::EscapeDataString($Id))/stop"
}

function Suspend-SmaJob {
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Id)
    Invoke-SmaApi POST "/jobs/$([uri]::EscapeDataString($Id))/suspend"
}

function Resume-SmaJob {
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Id)
    Invoke-SmaApi POST "/jobs/$([uri]::EscapeDataString($Id))/resume"
}

function Get-SmaVariable {
    <#
    .SYNOPSIS
    Variables (an encrypted one has no value), or one by name.
    #>
    [CmdletBinding()]
    param([Parameter(Position = 0)][string]$Name)
    if ($Name) { return Invoke-SmaApi GET "/variables/$([uri]::EscapeDataString($Name))" }
    Get-SmaPaged '/variables'
}

function Set-SmaVariable {
    <#
    .SYNOPSIS
    Creates or changes a variable; -Encrypted keeps it write-only.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name,
          [Parameter(Mandatory, Position = 1)][AllowNull()]$Value,
          [switch]$Encrypted, [string]$Description)
    try {
        $body = @{ name = $Name; value = $Value; is_encrypted = [bool]$Encrypted }
        if ($Description) { $body.description = $Description }
        Invoke-SmaApi POST '/variables' $body
    } catch {
        if ("$_" -notmatch 'already exists') { throw }
        $change = @{ value = $Value }
        if ($Encrypted) { $change.is_encrypted = $true }
        Invoke-SmaApi PATCH "/variables/$([uri]::EscapeDataString($Name))" $change
    }
}

function Set-SmaCredential {
    <#
    .SYNOPSIS
    Creates or changes a credential from a PSCredential.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name,
          [Parameter(Mandatory, Position = 1)][System.Management.Automation.PSCredential]$Value)
    $body = @{ username = $Value.UserName; password = $Value.GetNetworkCredential().Password }
    try {
        Invoke-SmaApi POST '/credentials' (@{ name = $Name } + $body)
    } catch {
        if ("$_" -notmatch 'already exists') { throw }
        Invoke-SmaApi PATCH "/credentials/$([uri]::EscapeDataString($Name))" $body
    }
}

function Get-SmaSchedule {
    [CmdletBinding()]
    param([Parameter(Position = 0)][string]$Name)
    if ($Name) { return Invoke-SmaApi GET "/schedules/$([uri]::EscapeDataString($Name))" }
    Get-SmaPaged '/schedules'
}

function Set-SmaSchedule {
    <#
    .SYNOPSIS
    Creates or changes a schedule (-Frequency OneTime, Minute, Hour, Day, Week, Month, Cron).
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name,
          [ValidateSet('OneTime', 'Minute', 'Hour', 'Day', 'Week', 'Month', 'Cron')][string]$Frequency,
          [int]$Interval, [datetime]$StartTime, [datetime]$ExpiryTime, [string]$TimeZone,
          [string[]]$WeekDays, [int[]]$MonthDays, [string]$Cron, [Nullable[bool]]$Enabled)
    $body = @{}
    if ($Frequency) { $body.frequency = $Frequency }
    if ($Interval) { $body.interval = $Interval }
    if ($PSBoundParameters.ContainsKey('StartTime')) { $body.start_time = $StartTime.ToUniversalTime().ToString('o') }
    if ($PSBoundParameters.ContainsKey('ExpiryTime')) { $body.expiry_time = $ExpiryTime.ToUniversalTime().ToString('o') }
    if ($TimeZone) { $body.time_zone = $TimeZone }
    if ($WeekDays) { $body.week_days = $WeekDays }
    if ($MonthDays) { $body.month_days = $MonthDays }
    if ($Cron) { $body.cron = $Cron }
    if ($null -ne $Enabled) { $body.enabled = $Enabled }
    try {
        $null = Invoke-SmaApi GET "/schedules/$([uri]::EscapeDataString($Name))"
    } catch {
        if (-not $Frequency) { throw "Schedule $Name does not exist: give -Frequency to create it." }
        return Invoke-SmaApi POST '/schedules' ($body + @{ name = $Name })
    }
    Invoke-SmaApi PATCH "/schedules/$([uri]::EscapeDataString($Name))" $body
}

Export-ModuleMember -Function Connect-Sma, Get-SmaRunbook, Import-SmaRunbook,
    Publish-SmaRunbook, Start-SmaRunbook, Get-SmaJob, Get-SmaJobOutput, Stop-SmaJob,
    Suspend-SmaJob, Resume-SmaJob, Get-SmaVariable, Set-SmaVariable, Set-SmaCredential,
    Get-SmaSchedule, Set-SmaSchedule
