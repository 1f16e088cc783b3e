"""A Python runbook's own requirements: PEP 723 inline script metadata, and the pinned set
publishing resolves it to.

The pinned set is what a RunbookVersion (and every job of it) stores in `requirements`:

    {"dependencies": ["cowsay==6.1", "httpx>=0.27"],   # as the script declares them
     "requires_python": ">=3.10",                      # or None
     "pinned": ["anyio==4.6.2", "cowsay==6.1", ...],   # the resolved set, sorted, name==version
     "python": "3.11",                                 # the interpreter it was resolved for
     "key": "<sha256 hex>"}                            # environment_key(pinned, python)

A runbook without a `# /// script` block (or with one that declares no dependencies) has no
requirements (None) and runs in the worker's own interpreter, as before.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from typing import Any

from smacommon.errors import ScriptError

# PEP 723's reference regular expression
_BLOCK = re.compile(
    r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")

Requirements = dict[str, Any]


def _line_of(content: str, offset: int) -> int:
    return content.count("\n", 0, offset) + 1


def inline_metadata(content: str) -> dict[str, Any] | None:
    """The script's `# /// script` table (PEP 723), or None when it has none."""
    blocks = [m for m in _BLOCK.finditer(content) if m.group("type") == "script"]
    if not blocks:
        return None
    if len(blocks) > 1:
        raise ScriptError("The script has more than one `# /// script` block; PEP 723 allows "
                          "one.", _line_of(content, blocks[1].start()), 1)
    block = blocks[0]
    toml = "".join(line[2:] if line.startswith("# ") else line[1:]
                   for line in block.group("content").splitlines(keepends=True))
    try:
        table = tomllib.loads(toml)
    except tomllib.TOMLDecodeError as exc:
        raise ScriptError(f"The `# /// script` block is not valid TOML: {exc}",
                          _line_of(content, block.start()), 1) from None
    return table


def declared(content: str) -> Requirements | None:
    """What the script asks for: {"dependencies": [...], "requires_python": str | None}, or
    None when it declares no dependencies."""
    table = inline_metadata(content)
    if table is None:
        return None
    line = _line_of(content, content.find("# /// script"))
    dependencies = table.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise ScriptError("`dependencies` in the `# /// script` block must be a list of "
                          'requirement strings, e.g. ["requests==2.32.3"].', line, 1)
    requires_python = table.get("requires-python")
    if requires_python is not None and not isinstance(requires_python, str):
        raise ScriptError('`requires-python` must be a string, e.g. ">=3.10".', line, 1)
    dependencies = [d.strip() for d in dependencies if d.strip()]
    if not dependencies:
        return None
    return {"dependencies": dependencies, "requires_python": requires_python}


def environment_key(pinned: list[str], python: str) -> str:
    """The environment a pinned set runs in: one per set and interpreter (major.minor)."""
    text = "\n".join([f"python {python}", *sorted(p.strip().lower() for p in pinned)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
