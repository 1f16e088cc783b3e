# How a runbook's streams reach the worker. Dot-sourced by SmaRunbook.psm1.
#
# Records go as one JSON object per line to the file descriptor whose number is in
# $env:SMA_RECORD_FD (the worker's record channel: a second descriptor of the job's stdout
# pipe, so records keep their place among printed lines), each after the character 0x1E and
# $env:SMA_RECORD_TAG; without it (a runbook run by hand) they are printed for people.
#
# SmaHost.ps1 pipes everything the runbook writes, all streams merged (*>&1), into
# Out-SmaStream, and hands Watch-SmaProgress the Progress collection of that run: progress
# is the one stream PowerShell cannot redirect, but a PowerShell instance collects it, and
# the collection says at once, on the runbook's own thread, that a record arrived.

$script:Channel = $null
$script:ChannelOpened = $false
$script:Utf8 = [System.Text.UTF8Encoding]::new($false)
$script:Prefix = [string][char]0x1E + [string]$env:SMA_RECORD_TAG
# the optional streams written as records (the worker's log_verbose/log_debug/log_progress)
$script:Keep = @{ Verbose = $false; Debug = $false; Progress = $false }

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

function Write-SmaOutputObject($Item) {
    # Strings, numbers and booleans are lines of stdout; any other object is a typed
    # Output record: its data as "value", its formatted text as "text".
    $type = $Item.GetType()
    if ($Item -is [string] -or $type.IsPrimitive -or $type.IsEnum -or
        $Item -is [decimal] -or $Item -is [System.Numerics.BigInteger]) {
        foreach ($line in ([string]$Item -split '\r?\n')) { [Console]::Out.WriteLine($line) }
        return
    }
    $data = ConvertTo-SmaData $Item
    $valueJson = ConvertTo-Json -InputObject $data -Compress -Depth 100 -WarningAction Ignore
    if ($null -eq $data) { $valueJson = 'null' }
    $lines = (Out-String -InputObject $Item -Width 160) -split '\r?\n' |
        ForEach-Object { $_.TrimEnd() }
    $text = ($lines -join "`n").Trim("`n")
    Write-SmaRecord ([ordered]@{ stream = 'Output'; text = $text }) -ValueJson $valueJson
}

function Write-SmaProgressRecord([System.Management.Automation.ProgressRecord]$Record) {
    if (-not $script:Keep.Progress) { return }
    $status = $Record.StatusDescription
    $percent = if ($Record.PercentComplete -ge 0) { $Record.PercentComplete } else { $null }
    if ($Record.RecordType -eq [System.Management.Automation.ProgressRecordType]::Completed) {
        $percent = 100
        # Write-Progress -Completed without -Status says 'Processing', its default
        if (-not $status -or $status -eq 'Processing') { $status = 'Completed' }
    }
    $text = if ($status) { "$($Record.Activity): $status" } else { $Record.Activity }
    if ($null -ne $percent) { $text += " ($percent%)" }
    $value = [ordered]@{ activity = $Record.Activity; status = $status; percent = $percent }
    if ($Record.CurrentOperation) { $value['operation'] = $Record.CurrentOperation }
    Write-SmaRecord ([ordered]@{ stream = 'Progress'; text = $text; value = $value })
}

function Out-SmaStream {
    # (SmaHost.ps1's) The end of the runbook's pipeline: each object of its merged streams
    # goes where the worker reads that stream. Errors go to stderr, one line per line.
    process {
        $item = $_
        if ($null -eq $item) { return }
        try {
            if ($item -is [System.Management.Automation.ErrorRecord]) {
                foreach ($line in ($item.ToString() -split '\r?\n')) {
                    [Console]::Error.WriteLine($line)
                }
            } elseif ($item -is [System.Management.Automation.WarningRecord]) {
                Write-SmaRecord ([ordered]@{ stream = 'Warning'; text = $item.Message })
            } elseif ($item -is [System.Management.Automation.VerboseRecord]) {
                if ($script:Keep.Verbose) {
                    Write-SmaRecord ([ordered]@{ stream = 'Verbose'; text = $item.Message })
                }
            } elseif ($item -is [System.Management.Automation.DebugRecord]) {
                if ($script:Keep.Debug) {
                    Write-SmaRecord ([ordered]@{ stream = 'Debug'; text = $item.Message })
                }
            } elseif ($item -is [System.Management.Automation.InformationRecord]) {
                foreach ($line in ([string]$item.MessageData -split '\r?\n')) {
                    [Console]::Out.WriteLine($line)
                }
            } elseif ($item -is [System.Management.Automation.ProgressRecord]) {
                Write-SmaProgressRecord $item  # a runbook may pipe one on
            } else {
                Write-SmaOutputObject $item
            }
        } catch {
            [Console]::Error.WriteLine("sma: cannot write an object of the runbook: $_")
        }
    }
}

function Watch-SmaProgress {
    # (SmaHost.ps1's) Progress records the runbook's commands write to $Collection (the
    # Streams.Progress of the PowerShell instance that runs it) become Progress records as
    # they come. The handler runs on the runbook's thread, in this module of its runspace.
    param($Collection)  # a PSDataCollection[ProgressRecord], empty as yet
    $Collection.add_DataAdded({
        param($progress, $added)
        try {
            # ReadAll empties it: a long run keeps no record in memory
            foreach ($record in $progress.ReadAll()) { Write-SmaProgressRecord $record }
        } catch {
            [Console]::Error.WriteLine("sma: cannot write a progress record: $_")
        }
    })
}

function Set-SmaStreamsKept {
    # (SmaHost.ps1's) Which optional streams become records, as the worker decided.
    param([System.Collections.IDictionary]$Keep)
    if ($null -eq $Keep) { return }
    foreach ($name in 'Verbose', 'Debug', 'Progress') { $script:Keep[$name] = [bool]$Keep[$name] }
}
