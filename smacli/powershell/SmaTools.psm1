# SmaTools: manage sma from PowerShell 7, over the same REST API as the `sma` command.
#
#   Import-Module ./smacli/powershell/SmaTools.psd1
#   Connect-Sma -Url http://127.0.0.1:8080 -Token (Read-Host -AsSecureString)
#   Import-SmaRunbook -Path ./hello.ps1 -Publish
#   Start-SmaRunbook -Name hello -Parameters @{ Name = 'sma' } -Wait
#
# Each cmdlet talks to -WebServiceEndpoint (with -Port), as SMA's own cmdlets do, else to the
# service Connect-Sma checked, else to SMA_URL; the token is Connect-Sma's, else SMA_TOKEN.
# Cmdlets that change anything take -WhatIf and -Confirm and ask nothing by default
# (ConfirmImpact Medium, as Stop-Job and Stop-Process), so scripts written for SMA's module,
# which never asked, still run unattended.
#
# Start-SmaRunbook takes the parameters of the function of the same name that jobs see
# (smaworker/runtime/SmaRunbook) and gives the same results: the job's id, or with -Wait the
# job's output. A line written for one works with the other, whichever a session finds first;
# `SmaTools\Start-SmaRunbook` and `SmaRunbook\Start-SmaRunbook` name one of them.
#
# API errors are terminating errors: the server's message, the error id SmaApi<status>, and an
# HttpRequestException whose StatusCode is the HTTP status (none when the service was not
# reached). Decisions look at that status, never at the message.

$script:SmaUrl = $null
$script:SmaToken = $null

# the private transport, then the cmdlets by resource (as the manifest's FileList says)
foreach ($part in 'Private/Api.ps1', 'Public/Runbooks.ps1', 'Public/Jobs.ps1',
                  'Public/Assets.ps1') {
    . (Join-Path $PSScriptRoot $part)
}

function Connect-Sma {
    <#
    .SYNOPSIS
    Checks the sma service and token, then remembers them for this session's Sma cmdlets.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][Alias('WebServiceEndpoint')][string]$Url,
          [Parameter(Mandatory)][System.Security.SecureString]$Token, [int]$Port)
    try {
        $plain = [System.Net.NetworkCredential]::new('', $Token).Password
        $sma = Resolve-SmaService $Url $Port $plain
        $null = Invoke-SmaApi $sma GET '/runbooks?limit=1'
    } catch {
        $PSCmdlet.ThrowTerminatingError($_)
    }
    $script:SmaUrl = $sma.Url
    $script:SmaToken = $sma.Token
}

Export-ModuleMember -Function Connect-Sma, Get-SmaRunbook, Import-SmaRunbook,
    Publish-SmaRunbook, Start-SmaRunbook, Get-SmaJob, Get-SmaJobOutput, Stop-SmaJob,
    Suspend-SmaJob, Resume-SmaJob, Get-SmaVariable, Set-SmaVariable, Set-SmaCredential,
    Get-SmaSchedule, Set-SmaSchedule
