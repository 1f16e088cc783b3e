# ConvertFrom-SmaJson: JSON as PowerShell values, the same on every PowerShell 7.
#
# Not ConvertFrom-Json, whose results differ between versions and from the data: it turns
# ISO 8601 strings into DateTime (-DateKind String only from 7.5), unrolls a one-element
# array at the top (-NoEnumerate only from 7.0) and gives PSCustomObject unless -AsHashtable.
# Here objects are hashtables (or, with -AsPSCustomObject, what ConvertFrom-Json would give
# for them), arrays stay arrays whatever their length, strings stay strings, integers are
# [long] (beyond it [double]). Dot-sourced by SmaHost.ps1 and SmaRunbook.psm1.

Add-Type -AssemblyName System.Text.Json  # part of .NET; loaded here in case nothing did yet

function ConvertFrom-SmaJsonElement($Element, [bool]$AsPSCustomObject) {
    switch ([string]$Element.ValueKind) {
        'Object' {
            $table = if ($AsPSCustomObject) { [ordered]@{} } else { @{} }
            foreach ($property in $Element.EnumerateObject()) {
                $table[$property.Name] =
                    ConvertFrom-SmaJsonElement $property.Value $AsPSCustomObject
            }
            if ($AsPSCustomObject) { return [pscustomobject]$table }
            return $table
        }
        'Array' {
            $list = [System.Collections.Generic.List[object]]::new()
            foreach ($item in $Element.EnumerateArray()) {
                $list.Add((ConvertFrom-SmaJsonElement $item $AsPSCustomObject))
            }
            return , $list.ToArray()  # the comma: an array stays one value, even of one item
        }
        'String' { return $Element.GetString() }
        'Number' {
            $long = [long]0
            if ($Element.TryGetInt64([ref]$long)) { return $long }
            return $Element.GetDouble()
        }
        'True' { return $true }
        'False' { return $false }
        default { return $null }
    }
}

function ConvertFrom-SmaJson {
    # One JSON text as one value (an array is written as one object: `$x = ConvertFrom-SmaJson
    # '[1]'` is an array of one). Throws on text that is not JSON.
    param([Parameter(Mandatory, Position = 0)][AllowEmptyString()][string]$Json,
          [switch]$AsPSCustomObject)
    $document = [System.Text.Json.JsonDocument]::Parse($Json,
        [System.Text.Json.JsonDocumentOptions]::new())
    try {
        ConvertFrom-SmaJsonElement $document.RootElement $AsPSCustomObject.IsPresent
    } finally {
        $document.Dispose()
    }
}
