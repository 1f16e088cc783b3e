"""PowerShell runbooks, read with tree-sitter-powershell: no `pwsh` is needed.

- `analyze` (publish time): the first syntax error, as a ScriptError naming its line and
  column, else the declared parameters (declarations.py). What the grammar wrongly rejects
  is patched first in a copy of the source that keeps every byte offset (repair.py); what
  still fails is a real error (diagnostics.py). Values (names, types, defaults) and the text
  quoted in messages always come from the original source; defaults are read as PowerShell
  reads literals (literals.py).
- `workflow_edits` (job start, in the worker): the edits that let an SMA `workflow` run as
  a PowerShell 7 function (workflow.py).
"""

from __future__ import annotations

from typing import Any

from smacommon.scripts.powershell.declarations import declarations, parameter_list
from smacommon.scripts.powershell.diagnostics import syntax_error
from smacommon.scripts.powershell.repair import is_blank, parse, prepare
from smacommon.scripts.powershell.strings import check_strings
from smacommon.scripts.powershell.workflow import Edit, apply_edits, edits_json, workflow_edits

__all__ = ["Edit", "analyze", "arguments_refusal", "apply_edits", "edits_json", "workflow_edits"]


def arguments_refusal(content: str) -> str | None:
    """PowerShell binds named values to the script's param() block: no positional ones."""
    return ("PowerShell runbooks take named parameters only (sma binds them to the "
            "script's param() block); give the values in parameters.")


def analyze(content: str) -> list[dict[str, Any]]:
    """Raise ScriptError naming line and column for a syntax error, else return the parameters."""
    source = prepare(content)
    if is_blank(source):
        return []  # empty, or only comments: the grammar wants a statement
    tree = parse(source)
    if tree.root_node.has_error:
        raise syntax_error(tree.root_node, source)
    check_strings(tree.root_node, source)  # PowerShell's parser refuses a bad `u{...} anywhere
    parameters = parameter_list(tree.root_node)
    return declarations(parameters, source) if parameters is not None else []
