"""Workflow to function: the edits that let an SMA `workflow` run as a PowerShell 7 function.

PowerShell 7 has no workflows. When the worker prepares a PowerShell job whose runbook
defines one, it computes these edits and hands them to the host script (SmaHost.ps1), which
applies them to the runbook's text, last offset first, before it parses it:

- `workflow Name` becomes `function Name`;
- `parallel { }`, `sequence { }` and `InlineScript { }` become calls of Invoke-SmaParallel,
  Invoke-SmaSequence and Invoke-SmaInlineScript (SmaRunbook.psm1); a block written on a
  later line is joined to the call by a line continuation (`` ` ``), so the call gets its
  block and every line keeps its number;
- `foreach -parallel [-throttlelimit N] (...)` loses its flags: the loop runs in order;
- `$using:x` and `$workflow:x` (also `${using:x}`, `@using:x`) become `$x`.

Only what is inside a workflow definition changes, and only code: comments, verbatim strings
and escaped `` `$ `` keep their text. Offsets and lengths count UTF-16 code units, as .NET
strings do; tree-sitter counts UTF-8 bytes, which this module converts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from smacommon.scripts.powershell.nodes import child, walk
from smacommon.scripts.powershell.repair import parse, prepare

_CALLS = {
    "parallel_statement": ("parallel", "Invoke-SmaParallel"),
    "sequence_statement": ("sequence", "Invoke-SmaSequence"),
    "inlinescript_statement": ("inlinescript", "Invoke-SmaInlineScript"),
}
_SCOPED = re.compile(
    rb"(?is)([$@])(?:\{(?:using|workflow):(?P<braced>.*)\}|(?:using|workflow):(?P<bare>.*))")
_FLAGS = re.compile(rb"(?i)-parallel\b|-throttlelimit\s+[0-9]+")
_WORKFLOW = re.compile(r"(?i)\bworkflow\b")


@dataclass(frozen=True)
class Edit:
    """Replace `length` code units at `offset` (UTF-16, as .NET counts) with `text`."""

    offset: int
    length: int
    text: str


def workflow_edits(content: str) -> list[Edit]:
    """The edits that turn the workflows in `content` into functions, last offset first.

    Offsets are in `content` without its byte order mark, as .NET's ReadAllText returns it.
    A script without a workflow needs none."""
    if not _WORKFLOW.search(content):
        return []
    original = content.removeprefix("\ufeff").encode("utf-8")
    tree = parse(prepare(content))  # a draft that does not parse still gets what parsed
    found: dict[int, tuple[int, int, str]] = {}
    for node in walk(tree.root_node):
        if node.type == "function_statement" and node.children \
                and node.children[0].type == "workflow":
            for start, end, replacement in _edits(node, original):
                found[start] = (start, end, replacement)
    kept: list[tuple[int, int, str]] = []
    for edit in sorted(found.values(), reverse=True):
        if not kept or edit[1] <= kept[-1][0]:  # never two edits of one character
            kept.append(edit)
    return _in_utf16(original, kept)


def edits_json(edits: list[Edit]) -> str:
    """The edits as SmaHost.ps1 reads them: {"edits": [{"offset", "length", "text"}, ...]}."""
    return json.dumps({"edits": [{"offset": e.offset, "length": e.length, "text": e.text}
                                 for e in edits]}, ensure_ascii=False)


def apply_edits(text: str, edits: list[Edit]) -> str:
    """`text` with `edits` applied in UTF-16 code units, last offset first, as the host does."""
    units = text.encode("utf-16-le", "surrogatepass")
    for edit in sorted(edits, key=lambda e: e.offset, reverse=True):
        start, end = 2 * edit.offset, 2 * (edit.offset + edit.length)
        units = units[:start] + edit.text.encode("utf-16-le", "surrogatepass") + units[end:]
    return units.decode("utf-16-le", "surrogatepass")


def _edits(workflow: Any, source: bytes) -> list[tuple[int, int, str]]:
    """(start byte, end byte, replacement) for one workflow definition."""
    keyword = workflow.children[0]
    edits = [(keyword.start_byte, keyword.end_byte, "function")]
    for node in walk(workflow):
        if node.type in _CALLS and node.children:
            name, call = _CALLS[node.type]
            word, block = node.children[0], child(node, "statement_block")
            if word.type != name:
                continue
            end = word.end_byte
            gap = source[end:block.start_byte] if block is not None else b""
            if b"\n" in gap and not gap.strip():
                joined = re.sub(rb"[ \t]*(\r?\n)", rb" `\1", gap).decode()
                edits.append((word.start_byte, block.start_byte, call + joined))
            else:
                edits.append((word.start_byte, end, call))
        elif node.type == "foreach_statement" and child(node, "foreach_parameter") is not None:
            opening = child(node, "(")
            stop = opening.start_byte if opening is not None else node.end_byte
            for flag in _FLAGS.finditer(source, node.children[0].end_byte, stop):
                edits.append((flag.start(), flag.end(), ""))
        elif node.type == "variable":
            written = source[node.start_byte:node.end_byte]
            scoped = _SCOPED.fullmatch(written)
            if scoped is None:
                continue
            sigil = scoped.group(1).decode()
            if scoped["braced"] is not None:
                plain = sigil + "{" + scoped["braced"].decode("utf-8") + "}"
            else:
                plain = sigil + scoped["bare"].decode("utf-8")
            edits.append((node.start_byte, node.end_byte, plain))
    return edits


def _in_utf16(source: bytes, edits: list[tuple[int, int, str]]) -> list[Edit]:
    """Byte ranges in UTF-8 `source` as offsets and lengths in UTF-16 code units."""
    points = sorted({point for start, end, _ in edits for point in (start, end)})
    units: dict[int, int] = {}
    done_bytes = done_units = 0
    for point in points:
        piece = source[done_bytes:point].decode("utf-8")
        done_units += len(piece.encode("utf-16-le", "surrogatepass")) // 2
        done_bytes = point
        units[point] = done_units
    return [Edit(units[start], units[end] - units[start], replacement)
            for start, end, replacement in edits]
