# SmaTools: variables, credentials and schedules.

function Get-SmaVariable {
    <#
    .SYNOPSIS
    Variables (an encrypted one has no value), or one by name.
    #>
    [CmdletBinding()]
    param([Parameter(Position = 0)][string]$Name, [string]$WebServiceEndpoint, [int]$Port)
    try {
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        if ($Name) { return Invoke-SmaApi $sma GET "/variables/$([uri]::EscapeDataString($Name))" }
        Get-SmaPagedItem $sma '/variables'
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Set-SmaVariable {
    <#
    .SYNOPSIS
    Creates or changes a variable; -Encrypted keeps it write-only.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param([Parameter(Mandatory, Position = 0)][string]$Name,
          [Parameter(Mandatory, Position = 1)][AllowNull()]$Value,
          [switch]$Encrypted, [string]$Description, [string]$WebServiceEndpoint, [int]$Port)
    if (-not $PSCmdlet.ShouldProcess("variable '$Name'", 'Set')) { return }
    try {
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        $body = @{ name = $Name; value = $Value; is_encrypted = [bool]$Encrypted }
        if ($Description) { $body.description = $Description }
        try {
            Invoke-SmaApi $sma POST '/variables' $body
        } catch {
            if ((Get-SmaErrorCode $_) -ne 409) { throw }  # 409: it exists, so it changes
            $change = @{ value = $Value }
            if ($Encrypted) { $change.is_encrypted = $true }
            Invoke-SmaApi $sma PATCH "/variables/$([uri]::EscapeDataString($Name))" $change
        }
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Set-SmaCredential {
    <#
    .SYNOPSIS
    Creates or changes a credential from a PSCredential.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param([Parameter(Mandatory, Position = 0)][string]$Name,
          [Parameter(Mandatory, Position = 1)][System.Management.Automation.PSCredential]$Value,
          [string]$WebServiceEndpoint, [int]$Port)
    if (-not $PSCmdlet.ShouldProcess("credential '$Name'", 'Set')) { return }
    try {
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        $body = @{ username = $Value.UserName; password = $Value.GetNetworkCredential().Password }
        try {
            Invoke-SmaApi $sma POST '/credentials' (@{ name = $Name } + $body)
        } catch {
            if ((Get-SmaErrorCode $_) -ne 409) { throw }  # 409: it exists, so it changes
            Invoke-SmaApi $sma PATCH "/credentials/$([uri]::EscapeDataString($Name))" $body
        }
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Get-SmaSchedule {
    <#
    .SYNOPSIS
    Schedules, or one by name.
    #>
    [CmdletBinding()]
    param([Parameter(Position = 0)][string]$Name, [string]$WebServiceEndpoint, [int]$Port)
    try {
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        if ($Name) { return Invoke-SmaApi $sma GET "/schedules/$([uri]::EscapeDataString($Name))" }
        Get-SmaPagedItem $sma '/schedules'
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}

function Set-SmaSchedule {
    <#
    .SYNOPSIS
    Creates (with -Frequency OneTime, Minute, Hour, Day, Week, Month or Cron) or changes a schedule.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param([Parameter(Mandatory, Position = 0)][string]$Name,
          [ValidateSet('OneTime', 'Minute', 'Hour', 'Day', 'Week', 'Month', 'Cron')]
          [string]$Frequency,
          [int]$Interval, [datetime]$StartTime, [datetime]$ExpiryTime, [string]$TimeZone,
          [string[]]$WeekDays, [int[]]$MonthDays, [string]$Cron, [Nullable[bool]]$Enabled,
          [string]$WebServiceEndpoint, [int]$Port)
    if (-not $PSCmdlet.ShouldProcess("schedule '$Name'", 'Set')) { return }
    try {
        $sma = Resolve-SmaService $WebServiceEndpoint $Port
        $body = @{}
        if ($Frequency) { $body.frequency = $Frequency }
        if ($Interval) { $body.interval = $Interval }
        if ($PSBoundParameters.ContainsKey('StartTime')) {
            $body.start_time = $StartTime.ToUniversalTime().ToString('o')
        }
        if ($PSBoundParameters.ContainsKey('ExpiryTime')) {
            $body.expiry_time = $ExpiryTime.ToUniversalTime().ToString('o')
        }
        if ($TimeZone) { $body.time_zone = $TimeZone }
        if ($WeekDays) { $body.week_days = $WeekDays }
        if ($MonthDays) { $body.month_days = $MonthDays }
        if ($Cron) { $body.cron = $Cron }
        if ($null -ne $Enabled) { $body.enabled = $Enabled }
        $item = "/schedules/$([uri]::EscapeDataString($Name))"
        if (-not $Frequency) {
            try {
                return Invoke-SmaApi $sma PATCH $item $body
            } catch {
                if ((Get-SmaErrorCode $_) -ne 404) { throw }
                throw "Schedule $Name does not exist: give -Frequency to create it."
            }
        }
        try {
            Invoke-SmaApi $sma POST '/schedules' ($body + @{ name = $Name })
        } catch {
            if ((Get-SmaErrorCode $_) -ne 409) { throw }  # 409: it exists, so it changes
            Invoke-SmaApi $sma PATCH $item $body
        }
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
}
