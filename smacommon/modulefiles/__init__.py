"""What an uploaded module file is: its type, name and version, read from the file itself
(a wheel's METADATA, an sdist's PKG-INFO, a PowerShell zip's .psd1, a Bash library's name and
header) without running or unpacking anything; a file that is not what it claims is a 400
saying what is wrong."""

from __future__ import annotations

import re

from smacommon.modulefiles.archives import UNPACKED_FACTOR, open_zip, refuse
from smacommon.modulefiles.bash import SUFFIXES as BASH_SUFFIXES
from smacommon.modulefiles.bash import inspect_bash
from smacommon.modulefiles.powershell import inspect_powershell
from smacommon.modulefiles.python import inspect_sdist, inspect_wheel, zip_is_sdist
from smacommon.modulefiles.types import MODULE_TYPES, ModuleFile

__all__ = ["MODULE_TYPES", "ModuleFile", "inspect"]

FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,254}")
_KINDS = {"python": ".whl, .tar.gz or .zip", "powershell": ".zip", "bash": ".sh or .bash"}


def _type_of(filename: str, data: bytes, unpacked_limit: int) -> str:
    """The type a file's name (and, for a .zip, its content) says it is."""
    if filename.endswith((".whl", ".tar.gz")):
        return "python"
    if filename.endswith(BASH_SUFFIXES):
        return "bash"
    if filename.endswith(".zip"):
        return "python" if zip_is_sdist(open_zip(data, unpacked_limit, ".zip")) else "powershell"
    raise refuse(f"sma cannot tell what {filename!r} is: upload a Python wheel (.whl) or sdist "
                 "(.tar.gz, .zip), a PowerShell module zipped (.zip) or a Bash library (.sh).")


def inspect(filename: str, data: bytes, max_bytes: int, module_type: str | None = None,
            version: str | None = None) -> ModuleFile:
    """The module `data` (uploaded as `filename`) is; ValidationFailed saying what is wrong."""
    if not FILENAME.fullmatch(filename or ""):
        raise refuse(f"Invalid file name {filename!r}: use up to 255 letters, digits, '.', "
                     "'+', '-' or '_' (the name a package's build gives it).")
    if not data:
        raise refuse("The file is empty.")
    if len(data) > max_bytes:
        raise refuse(f"The file is {len(data)} bytes, more than the {max_bytes} bytes "
                     "SMA_MODULE_MAX_MB allows.")
    unpacked_limit = UNPACKED_FACTOR * max_bytes
    if filename.endswith(".zip") and module_type in ("python", "powershell"):
        found = module_type  # a .zip is either: the type says which
    else:
        found = _type_of(filename, data, unpacked_limit)
    if module_type and module_type != found:
        raise refuse(f"{filename!r} is not a {module_type} module: that type takes a "
                     f"{_KINDS[module_type]} file.")
    if version and found != "bash":
        raise refuse("`version` is for Bash libraries only: a package's version is read "
                     "from its metadata.")
    if found == "bash":
        return inspect_bash(filename, data, version)
    if found == "powershell":
        return inspect_powershell(filename, data, unpacked_limit)
    if filename.endswith(".whl"):
        return inspect_wheel(filename, data, unpacked_limit)
    return inspect_sdist(filename, data, unpacked_limit)
