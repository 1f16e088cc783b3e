"""SMA workflows as PowerShell 7 functions: the edits the worker computes (here, in Python, from
the tree-sitter tree), the file the engine hands the host, and (with pwsh) the host applying
them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smacommon.scripts.powershell import Edit, apply_edits, edits_json, workflow_edits
from smaworker.engines.base import JobContext
from smaworker.engines.powershell import PowerShellEngine
from tests.test_powershell import needs_pwsh, run_host


def converted(script: str) -> str:
    return apply_edits(script.removeprefix("\ufeff"), workflow_edits(script))


def test_the_one_edit_workflow() -> None:
    # the most common workflow needs a single edit (a list of one the host must not unroll)
    assert workflow_edits('workflow Hello { "hi" }\n') == [Edit(0, 8, "function")]
    assert converted('workflow Hello { "hi" }\n') == 'function Hello { "hi" }\n'


@pytest.mark.parametrize(("script", "expected"), [
    ("Workflow W { 1 }", "function W { 1 }"),
    ("workflow W {\n  parallel { 'a'; 'b' }\n  sequence { 'c' }\n}",
     "function W {\n  Invoke-SmaParallel { 'a'; 'b' }\n  Invoke-SmaSequence { 'c' }\n}"),
    ("workflow W { $r = InlineScript { Get-Date } }",
     "function W { $r = Invoke-SmaInlineScript { Get-Date } }"),
    ("workflow W {\n  foreach -parallel -throttlelimit 5 ($vm in $vms) { $vm }\n}",
     "function W {\n  foreach   ($vm in $vms) { $vm }\n}"),
    ("workflow W { FOREACH -Parallel ($i in 1..2) { $i } }",
     "function W { FOREACH  ($i in 1..2) { $i } }"),
    ("workflow W { foreach ($i in 1..2) { $i } }", "function W { foreach ($i in 1..2) { $i } }"),
    # nested: a parallel in a foreach -parallel in a sequence, an InlineScript inside
    ("workflow W {\n  sequence {\n    foreach -parallel ($s in $list) {\n      parallel {\n"
     "        InlineScript { $using:s }\n        $workflow:count\n      }\n    }\n  }\n}",
     "function W {\n  Invoke-SmaSequence {\n    foreach  ($s in $list) {\n"
     "      Invoke-SmaParallel {\n        Invoke-SmaInlineScript { $s }\n        $count\n"
     "      }\n    }\n  }\n}"),
    # every spelling of a scoped variable, in code, in strings, in sub-expressions
    ("workflow W { $USING:a; ${using:b c}; @using:d; $Workflow:e; \"$using:f ${using:g}\"; "
     "\"$($using:h.Name)\"; @\"\n$using:i\n\"@ }",
     "function W { $a; ${b c}; @d; $e; \"$f ${g}\"; \"$($h.Name)\"; @\"\n$i\n\"@ }"),
    # what is not code keeps its text: comments, verbatim strings, escaped `$, other drives,
    # the keywords as arguments or members
    ("workflow W {\n  # parallel { $using:x }\n  <# sequence $using:x #>\n  '$using:x'\n"
     "  @'\n$using:x\n'@\n  \"`$using:x\"\n  $env:PATH\n  Write-Output parallel sequence\n"
     "  $o.Parallel\n}",
     "function W {\n  # parallel { $using:x }\n  <# sequence $using:x #>\n  '$using:x'\n"
     "  @'\n$using:x\n'@\n  \"`$using:x\"\n  $env:PATH\n  Write-Output parallel sequence\n"
     "  $o.Parallel\n}"),
    # a block on a later line is joined to its call, and every line keeps its number
    ("workflow W\n{\n    Parallel\n    {\n        'a'\n    }\n    InlineScript  \r\n\n    { 1 }\n}",
     "function W\n{\n    Invoke-SmaParallel `\n    {\n        'a'\n    }\n"
     "    Invoke-SmaInlineScript `\r\n `\n    { 1 }\n}"),
    ("workflow W {\n  parallel # the two at once\n  { 1 }\n}",  # a comment: left as it is
     "function W {\n  Invoke-SmaParallel # the two at once\n  { 1 }\n}"),
    # only the workflow changes: a helper before it and the call after it keep their text
    ("function Helper { Invoke-Command { $using:x } }\nworkflow W { $using:x }\nW",
     "function Helper { Invoke-Command { $using:x } }\nfunction W { $x }\nW"),
    # two workflows
    ("workflow A { parallel { 1 } }\nworkflow B { sequence { 2 } }",
     "function A { Invoke-SmaParallel { 1 } }\nfunction B { Invoke-SmaSequence { 2 } }"),
    # parameters and a param block survive
    ("workflow Stop-Vms {\n  param([Parameter(Mandatory=$true)][string]$Group, [int]$Wait = 5)\n"
     "  InlineScript { Stop-Vm $using:Group } -PSComputerName $h\n}",
     "function Stop-Vms {\n  param([Parameter(Mandatory=$true)][string]$Group, [int]$Wait = 5)\n"
     "  Invoke-SmaInlineScript { Stop-Vm $Group } -PSComputerName $h\n}"),
])
def test_workflow_becomes_a_function(script: str, expected: str) -> None:
    assert converted(script + "\n") == expected + "\n"


@pytest.mark.parametrize("script", [
    "Write-Output 'no workflow here'\n",
    "Invoke-Command -ComputerName s { $using:x }\n",  # $using: outside a workflow stays
    "# a workflow in a comment only: workflow W { }\n",
    "",
])
def test_scripts_without_a_workflow_need_no_edits(script: str) -> None:
    assert workflow_edits(script) == []


def test_offsets_count_utf16_code_units_after_non_ascii_text() -> None:
    # ü and é are 2 bytes and 1 code unit each; 😀 is 4 bytes and 2 code units
    script = "# Grüße, café 😀\nworkflow Grüße { \"😀 $using:name\"; $using:n }\n"
    edits = workflow_edits(script)
    units = script.encode("utf-16-le")
    for edit in edits:
        replaced = units[2 * edit.offset:2 * (edit.offset + edit.length)].decode("utf-16-le")
        assert replaced in ("workflow", "$using:name", "$using:n")
    assert [e.text for e in edits] == ["$n", "$name", "function"]  # last offset first
    assert edits[-1].offset == len("# Grüße, café 😀\n") + 1  # 😀 counts twice
    assert converted(script) == "# Grüße, café 😀\nfunction Grüße { \"😀 $name\"; $n }\n"


def test_offsets_skip_the_byte_order_mark_and_keep_crlf() -> None:
    # .NET's ReadAllText drops the byte order mark and keeps \r\n
    script = "\ufeffworkflow W\r\n{\r\n    \"é\"\r\n    $using:x\r\n}\r\n"
    assert workflow_edits(script) == [Edit(28, 8, "$x"), Edit(0, 8, "function")]
    assert converted(script) == "function W\r\n{\r\n    \"é\"\r\n    $x\r\n}\r\n"


def test_a_draft_that_does_not_parse_still_gets_its_edits() -> None:
    # the host then reports PowerShell's own error, at the line the author wrote it
    script = "workflow W {\n  parallel { $using:x }\n  if ($x {\n  }\n}\n"
    assert converted(script) == "function W {\n  Invoke-SmaParallel { $x }\n  if ($x {\n  }\n}\n"
    assert workflow_edits("workflow W {\n  parallel { <# never closed\n") == []  # no harm


def test_apply_edits_works_last_offset_first() -> None:
    text = "aaa😀bbb"
    edits = [Edit(0, 3, "X"), Edit(5, 3, "YY")]  # in any order
    assert apply_edits(text, edits) == "X😀YY"
    assert apply_edits(text, list(reversed(edits))) == "X😀YY"


_PIECES = ["parallel", "sequence", "InlineScript", "foreach -parallel ($i in $l)",
           "-throttlelimit 3", "{", "}", "$using:x", "${using:y z}", "@using:s", "$workflow:w",
           '"', "'", "@\"\n", "\n\"@", "#", "<#", "#>", "\n", "\r\n", " ", "é", "😀", "`", "$(",
           ")", ";", "workflow V {"]


@given(body=st.lists(st.sampled_from(_PIECES), max_size=16).map("".join))
@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_edits_stay_inside_the_text_and_apart(body: str) -> None:
    script = f"workflow W {{ {body} }}\n"
    edits = workflow_edits(script)
    units = script.encode("utf-16-le")
    for later, earlier in zip(edits, edits[1:], strict=False):
        assert earlier.offset + earlier.length <= later.offset  # sorted, none overlapping
    for edit in edits:  # each replaces what it should, and nothing else
        assert 0 <= edit.offset and 2 * (edit.offset + edit.length) <= len(units)
        replaced = units[2 * edit.offset:2 * (edit.offset + edit.length)].decode("utf-16-le")
        assert _EDITED.fullmatch(replaced), (replaced, edit)
    converted(script)


_EDITED = re.compile(r"(?is)workflow|(parallel|sequence|inlinescript)\s*|-parallel"
                     r"|-throttlelimit\s+[0-9]+|[$@]\{?(using|workflow):.*")


# --- the engine hands the edits to the host --------------------------------------------------


def _context(tmp_path: Path, script: str | bytes) -> JobContext:
    path = tmp_path / "runbook.ps1"
    if isinstance(script, str):
        script = script.encode("utf-8")
    path.write_bytes(script)
    return JobContext(job_id="00000000-0000-0000-0000-000000000002", workdir=tmp_path,
                      script_path=path, parameters={}, declared=[],
                      env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})


def test_engine_writes_the_edits_of_a_workflow(tmp_path: Path) -> None:
    script = "\ufeffworkflow Hi\r\n{\r\n    \"ä $using:x\"\r\n}\r\n".encode()
    _argv, env = PowerShellEngine().command(_context(tmp_path, script))
    path = Path(env["SMA_WORKFLOW_EDITS"])
    assert path == tmp_path / "workflow-edits.json"
    assert json.loads(path.read_text(encoding="utf-8")) == {"edits": [
        {"offset": 23, "length": 8, "text": "$x"},
        {"offset": 0, "length": 8, "text": "function"}]}
    assert path.read_text(encoding="utf-8") == edits_json(
        workflow_edits(script.decode("utf-8")))


def test_engine_writes_nothing_for_a_script(tmp_path: Path) -> None:
    _argv, env = PowerShellEngine().command(_context(tmp_path, "param($x)\n$x\n"))
    assert "SMA_WORKFLOW_EDITS" not in env
    assert not (tmp_path / "workflow-edits.json").exists()


# --- the host applies them (pwsh) ------------------------------------------------------------


@needs_pwsh
def test_host_runs_the_one_edit_workflow(tmp_path: Path) -> None:
    run = run_host(tmp_path, 'workflow Hello { "hi" }\n')
    assert run.code == 0, run.stderr
    assert run.lines == ["hi"]


@needs_pwsh
def test_host_runs_a_workflow_after_non_ascii_text(tmp_path: Path) -> None:
    script = ("# Grüße 😀\nworkflow Grüße\n{\n    param([string]$Name)\n    Parallel\n    {\n"
              "        InlineScript { \"😀 $using:Name\" }\n    }\n"
              "    foreach -parallel -throttlelimit 2 ($i in 1..2) { \"é $i $workflow:Name\" }\n"
              "}\n")
    run = run_host(tmp_path, script, {"Name": "zoë"})
    assert run.code == 0, run.stderr
    assert run.lines == ["😀 zoë", "é 1 zoë", "é 2 zoë"]


@needs_pwsh
def test_host_reports_errors_at_the_workflows_own_lines(tmp_path: Path) -> None:
    run = run_host(tmp_path, "workflow W\n{\n    Parallel\n    {\n        'a'\n    }\n"
                             "    if ($x {\n}\n")
    assert run.code == 1
    assert "runbook.ps1:7:" in run.stderr
