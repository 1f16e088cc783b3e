# PSScriptAnalyzer settings for sma's PowerShell: the worker's runtime (smaworker/runtime) and
# the SmaTools module (smacli/powershell). The Docker test stage runs, for each folder,
#   Invoke-ScriptAnalyzer -Path <folder> -Settings ./PSScriptAnalyzerSettings.psd1 -Recurse -EnableExit
# Every default rule runs at Error and Warning severity (Information rules are style hints:
# positional parameters, output types); each rule left out says where and why.
@{
    Severity     = @('Error', 'Warning')
    ExcludeRules = @(
        # SmaHostRun.ps1 (__SmaSecretValue) and SmaRunbook/SmaAssets.ps1 (Get-AutomationPSCredential) turn
        # secret parameters and credential assets, which reach the job as text (its parameters
        # file, the runtime API), into the SecureString and PSCredential runbooks expect: the
        # text is in the process already, and making a SecureString of it is the point.
        'PSAvoidUsingConvertToSecureStringWithPlainText'

        # The runtime's Start-SmaRunbook (SmaRunbook/SmaAssets.ps1) takes SMA's
        # -WebServiceEndpoint and -Port so SMA runbooks' calls still bind; inside a job they
        # are not needed (a job starts its children on its own service).
        'PSReviewUnusedParameter'

        # SmaRunbook.psm1's Set-AutomationVariable and Start-SmaRunbook run inside jobs, where
        # nobody answers a prompt, like SMA's activities of those names (no -WhatIf there).
        # SmaTools' cmdlets, which people run, must declare SupportsShouldProcess:
        # tests/test_smatools.py checks every state-changing one.
        'PSUseShouldProcessForStateChangingFunctions'

        # The runtime ignores the failure of best-effort steps on purpose: setting the console
        # encoding (SmaHost.ps1), closing the record channel and reading an error body that is
        # not JSON (SmaRunbook.psm1). tests/test_smatools.py keeps SmaTools free of them.
        'PSAvoidUsingEmptyCatchBlock'

        # Variables the runtime sets for code the rule cannot see: the host's state read by the
        # files it dot-sources, and the module's script-scope settings read by its functions.
        'PSUseDeclaredVarsMoreThanAssignments'
    )
}
