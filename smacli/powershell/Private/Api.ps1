# SmaTools' transport (private): which service, one call, pages, and waiting for a job.

function Resolve-SmaService {
    # The service a cmdlet talks to: -WebServiceEndpoint (and -Port), Connect-Sma, SMA_URL.
    param([string]$WebServiceEndpoint, [int]$Port, [string]$Token)
    $url = $WebServiceEndpoint
    if (-not $url) { $url = if ($script:SmaUrl) { $script:SmaUrl } else { $env:SMA_URL } }
    if (-not $Token) { $Token = if ($script:SmaToken) { $script:SmaToken } else { $env:SMA_TOKEN } }
    if (-not $url) {
        throw 'No sma service: give -WebServiceEndpoint, run Connect-Sma, or set SMA_URL.'
    }
    if (-not $Token) { throw 'No sma token: run Connect-Sma, or set SMA_TOKEN.' }
    if ($Port) {
        $builder = [System.UriBuilder]::new($url)
        $builder.Port = $Port
        $url = $builder.Uri.AbsoluteUri
    }
    [pscustomobject]@{ Url = $url.TrimEnd('/'); Token = $Token }
}

$script:Categories = @{
    400 = 'InvalidArgument'; 401 = 'AuthenticationError'; 403 = 'PermissionDenied'
    404 = 'ObjectNotFound'; 409 = 'InvalidOperation'; 422 = 'InvalidArgument'
    429 = 'LimitsExceeded'; 503 = 'ResourceUnavailable'
}

function Invoke-SmaApi {
    # One call to /api/v1. An answer of 400 or more is a terminating error with the server's
    # message, the id SmaApi<status> and an HttpRequestException whose StatusCode is the
    # status; no answer at all is one with the id SmaUnreachable and no StatusCode.
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)]$Service,
          [Parameter(Mandatory, Position = 1)][string]$Method,
          [Parameter(Mandatory, Position = 2)][string]$Path,
          [Parameter(Position = 3)]$Body)
    $params = @{
        Method = $Method; Uri = "$($Service.Url)/api/v1$Path"; ErrorAction = 'Stop'
        Headers = @{ Authorization = "Bearer $($Service.Token)"; Accept = 'application/json' }
        SkipHttpErrorCheck = $true; StatusCodeVariable = 'status'
    }
    if ($PSBoundParameters.ContainsKey('Body')) {
        # UTF-8 bytes, and say so: PowerShell 7.2 and 7.3 encode a string body as ISO-8859-1
        $json = ConvertTo-Json -InputObject $Body -Compress -Depth 100
        $params.Body = [System.Text.Encoding]::UTF8.GetBytes($json)
        $params.ContentType = 'application/json; charset=utf-8'
    }
    $status = 0
    try {
        $answer = Invoke-RestMethod @params
    } catch {
        $unreached = [System.Net.Http.HttpRequestException]::new(
            "sma: cannot reach $($Service.Url): $($_.Exception.Message)", $_.Exception)
        $PSCmdlet.ThrowTerminatingError([System.Management.Automation.ErrorRecord]::new(
            $unreached, 'SmaUnreachable', 'ConnectionError', $params.Uri))
    }
    if ($status -lt 400) { return $answer }
    $message = $null
    if ($answer -is [string]) {
        $message = $answer.Trim()  # not JSON: a proxy's page, say
        if ($message.Length -gt 300) { $message = $message.Substring(0, 300) + '...' }
    } elseif ($null -ne $answer -and $answer.PSObject.Properties['message']) {
        $message = $answer.message
    }
    $code = [System.Enum]::ToObject([System.Net.HttpStatusCode], $status)  # any number
    if (-not $message) { $message = $code.ToString() }
    $failure = [System.Net.Http.HttpRequestException]::new(
        "sma: $message (HTTP $status)", $null, $code)
    $category = 'NotSpecified'
    if ($script:Categories.Contains($status)) { $category = $script:Categories[$status] }
    $PSCmdlet.ThrowTerminatingError([System.Management.Automation.ErrorRecord]::new(
        $failure, "SmaApi$status", $category, $params.Uri))
}

function Get-SmaErrorCode {
    # The HTTP status of an error from Invoke-SmaApi; 0 when there was no answer.
    param([System.Management.Automation.ErrorRecord]$ErrorRecord)
    $exception = $ErrorRecord.Exception
    if ($exception -is [System.Net.Http.HttpRequestException] -and
        $null -ne $exception.StatusCode) {
        return [int]$exception.StatusCode
    }
    0
}

function Get-SmaPagedItem {
    # Every item of a listing, page after page (next_cursor).
    param($Service, [string]$Path)
    $separator = if ($Path.Contains('?')) { '&' } else { '?' }
    $cursor = $null
    do {
        $page = $Path
        if ($cursor) { $page += "${separator}cursor=$([uri]::EscapeDataString($cursor))" }
        $answer = Invoke-SmaApi $Service GET $page
        $answer.items
        $cursor = $answer.next_cursor
    } while ($cursor)
}

function Get-SmaRecord {
    # A job's records in order, page after page (next_after_seq).
    param($Service, [string]$Id, [string[]]$Stream, [int]$Attempt)
    $after = 0
    do {
        $path = "/jobs/$([uri]::EscapeDataString($Id))/streams?after_seq=$after&limit=5000"
        if ($Stream) { $path += "&stream=$($Stream -join ',')" }
        if ($Attempt) { $path += "&attempt=$Attempt" }
        $answer = Invoke-SmaApi $Service GET $path
        $answer.items
        $after = $answer.next_after_seq
    } while ($null -ne $after)
}

function Wait-SmaJob {
    # Polls until the job is Completed, Failed, Stopped or Suspended (or -TimeoutSeconds pass).
    param($Service, $Job, [int]$TimeoutSeconds)
    $deadline = if ($TimeoutSeconds -gt 0) { (Get-Date).AddSeconds($TimeoutSeconds) } else { $null }
    $pause = 100
    while ($Job.status -notin 'Completed', 'Failed', 'Stopped', 'Suspended') {
        if ($deadline -and (Get-Date) -gt $deadline) {
            throw "Job $($Job.id) is still $($Job.status) after $TimeoutSeconds s."
        }
        Start-Sleep -Milliseconds $pause
        $pause = [Math]::Min($pause * 2, 2000)
        $Job = Invoke-SmaApi $Service GET "/jobs/$($Job.id)"
    }
    $Job
}
