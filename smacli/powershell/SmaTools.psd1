# SmaTools' manifest: Import-Module ./smacli/powershell/SmaTools.psd1
@{
    RootModule           = 'SmaTools.psm1'
    ModuleVersion        = '0.1.0'
    GUID                 = '0a2b8d64-8301-4a7f-bf2e-fea936c785ca'
    Author               = 'sma contributors'
    CompanyName          = 'sma'
    Copyright            = 'Licensed under the Apache License 2.0.'
    Description          = 'Manage sma (Service Management Automation for Python) over its REST API: runbooks, jobs, variables, credentials, schedules.'
    PowerShellVersion    = '7.2'
    CompatiblePSEditions = @('Core')
    FunctionsToExport    = @(
        'Connect-Sma'
        'Get-SmaRunbook'
        'Import-SmaRunbook'
        'Publish-SmaRunbook'
        'Start-SmaRunbook'
        'Get-SmaJob'
        'Get-SmaJobOutput'
        'Stop-SmaJob'
        'Suspend-SmaJob'
        'Resume-SmaJob'
        'Get-SmaVariable'
        'Set-SmaVariable'
        'Set-SmaCredential'
        'Get-SmaSchedule'
        'Set-SmaSchedule'
    )
    CmdletsToExport      = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    FileList             = @(
        'SmaTools.psd1'
        'SmaTools.psm1'
        'Private/Api.ps1'
        'Public/Runbooks.ps1'
        'Public/Jobs.ps1'
        'Public/Assets.ps1'
    )
    PrivateData          = @{
        PSData = @{
            Tags = @('sma', 'ServiceManagementAutomation', 'runbook', 'automation')
        }
    }
}
