"""Bash runbooks: `bash -n` finds syntax errors; parameters are declared explicitly."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from typing import Any

from smacommon.errors import ScriptError

_LINE = re.compile(r"line (\d+): (.*)")


def analyze(content: str) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False, encoding="utf-8") as fh:
        fh.write(content)
        path = fh.name
    try:
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-n", path],
            capture_output=True, text=True, timeout=30, env={"PATH": os.defpath, "LANG": "C"},
        )
    except FileNotFoundError:
        raise ScriptError("bash is not installed on the web service host") from None
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        first = proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else "syntax error"
        match = _LINE.search(first)
        if match:
            raise ScriptError(f"Bash syntax error: {match.group(2)}", int(match.group(1)), 1)
        raise ScriptError(f"Bash syntax error: {first.replace(path, 'runbook')}")
    return []
