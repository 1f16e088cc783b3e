# Assets, child runbooks and the job's identity token, through sma's runtime API
# (/api/v1/runtime) with the job's own token (SMA_JOB_TOKEN). Dot-sourced by SmaRunbook.psm1.
#
# Calls go through one HttpClient rather than Invoke-RestMethod, which can trust only the
# system's CAs (or, with -SkipCertificateCheck, nothing at all) and sends bodies as
# ISO-8859-1 on PowerShell 7.2 and 7.3.

$script:Http = $null

function New-SmaHttpClient {
    # With SMA_API_CA_FILE (`sma up --tls-cert`, a private CA) the service's certificate must
    # chain to a certificate of that file, and to no other, as Python's
    # ssl.create_default_context(cafile=...) has it; its host name is checked as always.
    $handler = [System.Net.Http.SocketsHttpHandler]::new()
    $caFile = $env:SMA_API_CA_FILE
    if ($caFile) {
        $options = $handler.SslOptions
        if ($null -eq $options.GetType().GetProperty('CertificateChainPolicy')) {
            throw ('AutomationAssetError: SMA_API_CA_FILE needs PowerShell 7.3 or later ' +
                   '(.NET 7), which can trust a CA file for one connection; this is ' +
                   "PowerShell $($PSVersionTable.PSVersion).")
        }
        $roots = [System.Security.Cryptography.X509Certificates.X509Certificate2Collection]::new()
        try {
            $roots.ImportFromPemFile($caFile)
        } catch {
            $reason = $_.Exception.GetBaseException().Message
            throw "AutomationAssetError: SMA_API_CA_FILE ($caFile) cannot be read: $reason"
        }
        if ($roots.Count -eq 0) {
            throw "AutomationAssetError: SMA_API_CA_FILE ($caFile) holds no PEM certificate."
        }
        $policy = [System.Security.Cryptography.X509Certificates.X509ChainPolicy]::new()
        $policy.TrustMode =
            [System.Security.Cryptography.X509Certificates.X509ChainTrustMode]::CustomRootTrust
        $policy.CustomTrustStore.AddRange($roots)
        # as Python's default context: a private CA publishes no revocation list
        $policy.RevocationMode =
            [System.Security.Cryptography.X509Certificates.X509RevocationMode]::NoCheck
        $options.CertificateChainPolicy = $policy
    }
    $client = [System.Net.Http.HttpClient]::new($handler)
    $client.Timeout = [timespan]::FromSeconds(30)
    return $client
}

function Invoke-SmaRuntime {
    # One call of /api/v1/runtime/<Path>; its JSON answer (hashtables, or PSCustomObject
    # with -AsPSCustomObject). -Body goes as {"value": Body}, -RawBody as it is, in UTF-8.
    param([string]$Method, [string]$Path, $Body, $RawBody, [switch]$AsPSCustomObject)
    if (-not $env:SMA_API_URL -or -not $env:SMA_JOB_TOKEN) {
        throw ('AutomationAssetError: this works only inside an sma job ' +
               '(SMA_API_URL and SMA_JOB_TOKEN are not set).')
    }
    if ($null -eq $script:Http) { $script:Http = New-SmaHttpClient }
    $base = $env:SMA_API_URL.TrimEnd('/')
    $request = [System.Net.Http.HttpRequestMessage]::new(
        [System.Net.Http.HttpMethod]::new($Method), "$base/api/v1/runtime/$Path")
    $request.Headers.Authorization =
        [System.Net.Http.Headers.AuthenticationHeaderValue]::new('Bearer', $env:SMA_JOB_TOKEN)
    $json = $null
    if ($PSBoundParameters.ContainsKey('Body')) {
        $json = ConvertTo-Json -InputObject @{ value = $Body } -Compress -Depth 100
    }
    if ($PSBoundParameters.ContainsKey('RawBody')) {
        $json = ConvertTo-Json -InputObject $RawBody -Compress -Depth 100
    }
    if ($null -ne $json) {  # Content-Type: application/json; charset=utf-8
        $request.Content = [System.Net.Http.StringContent]::new($json, $script:Utf8,
                                                                 'application/json')
    }
    try {
        $response = $script:Http.Send($request)
        $text = $response.Content.ReadAsStringAsync().GetAwaiter().GetResult()
        $status = [int]$response.StatusCode
        $response.Dispose()
    } catch {
        # the innermost reason: a refused connection, an untrusted certificate, a timeout
        $reason = $_.Exception.GetBaseException().Message
        throw "AutomationAssetError: the sma service at $base cannot be reached: $reason"
    } finally {
        $request.Dispose()
    }
    $answer = $null
    if ($text) {
        try { $answer = ConvertFrom-SmaJson $text -AsPSCustomObject:$AsPSCustomObject } catch { }
    }
    if ($status -ge 400) {
        $message = $text
        if ($answer -is [System.Collections.IDictionary] -and $answer['message']) {
            $message = $answer['message']
        } elseif ($answer -is [System.Management.Automation.PSCustomObject] -and $answer.message) {
            $message = $answer.message
        }
        if ($status -eq 404) { throw "AutomationAssetNotFound: $message" }
        throw "AutomationAssetError: $status $message"
    }
    return $answer
}

function Write-SmaMask {
    # tell the worker to write *** for this secret from now on
    param($Value)
    if ($null -eq $Value) { return }
    if ($Value -isnot [string]) { $Value = ConvertTo-Json -InputObject $Value -Compress -Depth 100 }
    if ($Value.Length -gt 0) { Write-SmaRecord ([ordered]@{ type = 'mask'; value = $Value }) }
}

function New-SmaCredential([string]$UserName, [string]$Password) {
    # ConvertTo-SecureString refuses an empty string; an empty password is still one
    $secure = if ($Password) {
        ConvertTo-SecureString -String $Password -AsPlainText -Force
    } else {
        [securestring]::new()
    }
    return [System.Management.Automation.PSCredential]::new($UserName, $secure)
}

function Get-AutomationVariable {
    <#
    .SYNOPSIS
    The value of a variable asset (an object as a PSCustomObject, as ConvertFrom-Json gives).
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name)
    $body = Invoke-SmaRuntime GET "variables/$([uri]::EscapeDataString($Name))" -AsPSCustomObject
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
    Write-SmaMask $body['password']
    return New-SmaCredential $body['username'] $body['password']
}

function Get-AutomationConnection {
    <#
    .SYNOPSIS
    A connection asset's fields, as a hashtable.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name)
    $body = Invoke-SmaRuntime GET "connections/$([uri]::EscapeDataString($Name))"
    $fields = $body['values']  # not .values: that is the hashtable's own Values
    foreach ($field in $body['encrypted_fields']) { Write-SmaMask $fields[$field] }
    return $fields
}

function Get-AutomationCertificate {
    <#
    .SYNOPSIS
    A certificate asset as an X509Certificate2, with its private key when it has one.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name)
    $body = Invoke-SmaRuntime GET "certificates/$([uri]::EscapeDataString($Name))"
    $bytes = [Convert]::FromBase64String($body['data'])
    return [System.Security.Cryptography.X509Certificates.X509Certificate2]::new($bytes)
}

function Start-SmaRunbook {
    <#
    .SYNOPSIS
    Starts a published runbook as a child of this job: its job id, or with -Wait its output.
    .DESCRIPTION
    A child waited on stops when this job is stopped. A child that ends other than
    Completed is an error naming its status and reason. -WebServiceEndpoint and -Port, which
    SMA runbooks pass to reach their service, are taken and not needed: a job always starts
    its children on the service that runs it.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][Alias('RunbookName')][string]$Name,
          [Parameter(Position = 1)][hashtable]$Parameters = @{},
          [switch]$Wait,
          [string]$WorkerGroup,
          [int]$TimeoutSeconds = 0,
          [string]$WebServiceEndpoint,
          [int]$Port)
    $request = @{ runbook = $Name; parameters = $Parameters; wait = [bool]$Wait }
    if ($WorkerGroup) { $request.worker_group = $WorkerGroup }
    $job = Invoke-SmaRuntime POST 'jobs' -RawBody $request
    if (-not $Wait) { return $job['id'] }
    $deadline = if ($TimeoutSeconds -gt 0) { (Get-Date).AddSeconds($TimeoutSeconds) } else { $null }
    $pause = 50
    while ($true) {
        $job = Invoke-SmaRuntime GET "jobs/$($job['id'])"
        if ($job['status'] -in 'Completed', 'Failed', 'Stopped', 'Suspended') { break }
        if ($deadline -and (Get-Date) -gt $deadline) {
            throw "Child job $($job['id']) still $($job['status']) after $TimeoutSeconds s."
        }
        Start-Sleep -Milliseconds $pause
        $pause = [Math]::Min($pause * 2, 1000)
    }
    if ($job['status'] -ne 'Completed') {
        $reason = if ($job['exception']) { $job['exception'] } else { $job['status_reason'] }
        throw "Child job $($job['id']) ($Name) ended $($job['status']): $reason"
    }
    $out = Invoke-SmaRuntime GET "jobs/$($job['id'])/output" -AsPSCustomObject
    foreach ($item in $out.items) {
        if ($null -ne $item.value) { $item.value } else { $item.text }
    }
}

function Get-SmaIdToken {
    <#
    .SYNOPSIS
    The job's identity token: a short-lived JWT for -Audience, signed by the sma service.
    .DESCRIPTION
    Its claims say which runbook (sub = runbook:<name>), version, job, worker group and
    starter this is; a cloud that trusts the service as an OpenID Connect issuer exchanges
    it for its own credentials, with no secret stored in sma: AWS
    (AssumeRoleWithWebIdentity, audience sts.amazonaws.com), an Azure federated credential
    (audience api://AzureADTokenExchange), Vault's JWT auth. The token is masked in the
    job's output.
    .EXAMPLE
    $jwt = Get-SmaIdToken -Audience 'api://AzureADTokenExchange'
    Connect-AzAccount -ServicePrincipal -Tenant $tenantId -ApplicationId $appId -FederatedToken $jwt
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param([Parameter(Mandatory, Position = 0)][ValidateLength(1, 255)][string]$Audience,
          [ValidateRange(60, 3600)][int]$LifetimeSeconds)
    $query = "audience=$([uri]::EscapeDataString($Audience))"
    if ($PSBoundParameters.ContainsKey('LifetimeSeconds')) {
        $query += "&lifetime=$LifetimeSeconds"
    }
    $body = Invoke-SmaRuntime GET "id-token?$query"
    Write-SmaMask $body['value']
    return [string]$body['value']
}
