"""What an uploaded file is found to be, and the rule every module name follows."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.utils import canonicalize_name

from smacommon.errors import ValidationFailed
from smacommon.names import MODULE, check_name

MODULE_TYPES = ("python", "powershell", "bash")
# /api/v1/modules/simple/ is the package index: a module of that name could not be read
RESERVED_NAMES = frozenset({"simple"})


@dataclass(frozen=True)
class ModuleFile:
    """An uploaded file's module: its name as given and normalized, version, type, file name."""

    name: str
    normalized_name: str
    version: str
    module_type: str
    filename: str


def normalize(name: str) -> str:
    """A module's name as sma compares it, whatever its type: PEP 503's (lower case, each run
    of '-', '_' and '.' one '-'), so that one name never means two modules."""
    return canonicalize_name(name)


def check_module_name(name: str) -> str:
    """`name` when a module may have it; else a 400 saying what a name may be."""
    check_name(name, MODULE, "module name", field="file")
    if name.lower() in RESERVED_NAMES:
        raise ValidationFailed(f"A module cannot be named {name!r}: /api/v1/modules/{name}/ "
                               "is the package index.", {"file": ["Reserved name."]})
    return name
