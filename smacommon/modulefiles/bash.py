"""Bash libraries: one file, <name>.sh (or .bash), whose version is the form's `version` or
a `# version: X` line among the comment lines it starts with; checked with `bash -n`."""

from __future__ import annotations

import re

from smacommon.errors import ScriptError
from smacommon.modulefiles.archives import refuse
from smacommon.modulefiles.types import ModuleFile, check_module_name, normalize
from smacommon.scripts.bash import analyze

SUFFIXES = (".sh", ".bash")
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
_HEADER = re.compile(r"#\s*version\s*:\s*(\S*)\s*", re.IGNORECASE)
HEADER_LINES = 50  # the header is looked for among the first lines only


def header_version(content: str) -> str | None:
    """The `# version: X` of the comment lines the file starts with (a shebang included)."""
    for line in content.splitlines()[:HEADER_LINES]:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return None
        match = _HEADER.fullmatch(stripped)
        if match:
            return match.group(1)
    return None


def inspect_bash(filename: str, data: bytes, version: str | None) -> ModuleFile:
    """A Bash library: UTF-8 text that `bash -n` takes, named by its file, versioned by the
    form or its header (which must agree when both are given)."""
    name = next(filename[:-len(s)] for s in SUFFIXES if filename.endswith(s))
    check_module_name(name)
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse("A Bash library must be UTF-8 text; this file is not.") from None
    if "\x00" in content:
        raise refuse("A Bash library cannot contain NUL characters.")
    declared = header_version(content)
    if version and declared and version != declared:
        raise refuse(f"The form says version {version} but the file's header says "
                     f"{declared}; give one, or make them agree.")
    version = version or declared
    if not version:
        raise refuse("A Bash library needs a version: a `# version: 1.0.0` line at its top, "
                      "or the form field `version` (sma module upload FILE --version 1.0.0).")
    if not VERSION.fullmatch(version):
        raise refuse(f"Invalid version {version!r}: use up to 64 letters, digits, '.', '+', "
                     "'-' or '_', starting with a letter or digit.")
    try:
        analyze(content)
    except ScriptError as exc:
        raise refuse(f"{filename}: {exc.message}") from None
    return ModuleFile(name, normalize(name), version, "bash", filename)
