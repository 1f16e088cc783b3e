"""Positional runbook arguments: a list of strings a start gives a script in order.

Azure Automation gives a Python runbook its input values as an array: `sys.argv[0]` is the
script and `sys.argv[1]` the first value (Start-AzAutomationRunbook's ordered Parameters give
the values by position; their keys are ignored). sma takes them as `"arguments": [...]`
beside or instead of the named `"parameters"`, and gives them to a script-mode Python runbook
as `sys.argv[1:]` and to a Bash runbook as `$1 $2 ...`, each item one argument, in order.

A runbook that declares no parameters takes any arguments. One that declares parameters
binds its arguments to them in order, as PowerShell binds positional values: the count,
types and mandatory ones are checked, and the parameters after them may be given by name.
"""

from __future__ import annotations

import json
import math
from typing import Any

from smacommon.errors import ValidationFailed
from smacommon.parameters import coerce

MAX_ARGUMENTS = 100
# what the kernel takes in one exec (128 KiB an argument, about 2 MiB in all) and what a
# job row should hold: the same bound as the named parameters' JSON
MAX_ARGUMENTS_BYTES = 64 * 1024

_WHAT = ("arguments is a list of strings, given to the runbook in order as its command-line "
         'arguments (sys.argv[1:] in Python, $1 $2 ... in Bash), e.g. ["-s", "web01", "extra"]')


def _refuse(message: str, detail: str | None = None) -> ValidationFailed:
    return ValidationFailed(message, {"arguments": [detail or message]})


def _text(index: int, item: Any) -> str:
    """One argument as the runbook gets it: a string as it is, a number or boolean as its
    JSON text (what Azure does with a typed value: a Python runbook reads only strings)."""
    if isinstance(item, str):
        text = item
    elif isinstance(item, bool):
        text = "true" if item else "false"
    elif isinstance(item, int | float) and not (isinstance(item, float)
                                                and not math.isfinite(item)):
        text = json.dumps(item)
    else:
        kind = ("null" if item is None else "an object" if isinstance(item, dict)
                else "a list" if isinstance(item, list) else type(item).__name__)
        raise _refuse(
            f"arguments[{index}] is {kind}; each argument is one string. Send structured data "
            "as JSON text in one string (the runbook parses it: json.loads(sys.argv[n])), or "
            "as a named parameter.", f"Item {index} must be a string.")
    if "\x00" in text:
        raise _refuse(f"arguments[{index}] contains a NUL character, which no program can "
                      "receive in its command line.", f"Item {index} contains NUL.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(f"arguments[{index}] is not valid Unicode text (a lone surrogate).",
                      f"Item {index} is not valid text.") from None
    return text


def normalize(raw: Any) -> list[str]:
    """Check the `arguments` of a start, link or webhook; the strings to run with."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        shown = json.dumps(raw, default=str)
        raise _refuse(f"{_WHAT}; got {shown[:60]}{'…' if len(shown) > 60 else ''}.",
                      "Must be a list of strings.")
    if len(raw) > MAX_ARGUMENTS:
        raise _refuse(f"{len(raw)} arguments given; a job takes at most {MAX_ARGUMENTS}. Pass "
                      "long lists as JSON text in one argument, or through a variable asset.",
                      "Too many arguments.")
    texts = [_text(i, item) for i, item in enumerate(raw)]
    size = sum(len(t.encode("utf-8")) + 1 for t in texts)
    if size > MAX_ARGUMENTS_BYTES:
        raise _refuse(f"The arguments are {size} bytes; the limit is {MAX_ARGUMENTS_BYTES}. "
                      "Pass large data through a variable asset or a file instead.",
                      "Too large.")
    return texts


def refusal(runbook_type: str, content: str) -> str | None:
    """Why a runbook of this type and content takes no positional arguments (None: it does).
    Each language says so in its analyzer (`arguments_refusal`; smacommon/scripts)."""
    from smacommon.scripts import arguments_refusal

    return arguments_refusal(runbook_type, content)


def bind(runbook_type: str, content: str | None, declared: list[dict[str, Any]],
         raw: Any, named: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Check the positional arguments of a start against the runbook; the arguments to run
    with, and the declarations left for values given by name.

    Each argument binds the next declared parameter (its type checked, the text passed as it
    is); more arguments than declared parameters, a parameter given both by position and by
    name, and a secret one given by position (its value would be stored and shown in clear)
    are refused. A runbook without declarations takes any arguments."""
    arguments = normalize(raw)
    if not arguments:
        return [], declared
    why = refusal(runbook_type, content or "")
    if why:
        raise _refuse(f"This runbook takes no positional arguments: {why}",
                      "Not taken by this runbook.")
    if not declared:
        return arguments, declared
    names = ", ".join(d["name"] for d in declared)
    if len(arguments) > len(declared):
        raise _refuse(f"{len(arguments)} arguments given; the runbook declares "
                      f"{len(declared)} parameters ({names}), which take at most "
                      f"{len(declared)} by position.", "Too many arguments.")
    by_name = {str(k).lower() for k in named} if isinstance(named, dict) else set()
    messages = []
    for index, (decl, text) in enumerate(zip(declared, arguments, strict=False)):
        name = decl["name"]
        if name.lower() in by_name:
            messages.append(f"Parameter {name} is given both by position (arguments[{index}])"
                            " and by name; give it once.")
        elif decl.get("secret"):
            messages.append(f"Parameter {name} is secret: give it by name in parameters, "
                            "where its value is sealed (a positional argument is stored and "
                            "shown as it is).")
        else:
            try:
                coerce(decl, text)
            except ValidationFailed as exc:
                messages.append(f"arguments[{index}]: {exc.message}")
    if messages:
        raise _refuse(" ".join(messages), " ".join(messages))
    return arguments, declared[len(arguments):]
