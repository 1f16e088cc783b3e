"""What a name may be, for each kind of object: the rules side by side, checked in one place.

Names are path segments of the API (/api/v1/variables/{name}); every HTTP client resolves
"." and ".." away before sending, so an object named so could be neither read nor deleted.
No rule takes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from smacommon.errors import ValidationFailed


@dataclass(frozen=True)
class NameRule:
    """A pattern a whole name must match, and how to say it to the person who typed one."""

    pattern: re.Pattern[str]
    allowed: str


# variables, credentials, connections, connection types, certificates, schedules, webhooks
OBJECT = NameRule(re.compile(r"(?! )[A-Za-z0-9_.\- ]{1,128}(?<! )"),
                  "1-128 letters, digits, spaces, '.', '-' or '_'")
# also a folder name on the worker and a word in every shell
RUNBOOK = NameRule(re.compile(r"[A-Za-z0-9_-]{1,128}"), "1-128 letters, digits, '-' or '_'")
# a variable of Bash, Python and PowerShell alike
PARAMETER = NameRule(re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}"),
                     "letters, digits and _, not starting with a digit")
# an uploaded module: a Python distribution name (PEP 508), also a PowerShell module's folder
# and a Bash library's file name
MODULE = NameRule(re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?"),
                  "1-128 letters, digits, '.', '-' or '_', starting and ending with a letter "
                  "or digit")
# only ever shown, never in a URL (tokens go by id)
LABEL = NameRule(re.compile(r".{1,128}", re.DOTALL), "1-128 characters")

_DOTS = (".", "..")


def check_name(name: Any, rule: NameRule = OBJECT, what: str = "name",
               field: str = "name") -> str:
    """`name` when `rule` takes it; else ValidationFailed saying what a name may be."""
    if isinstance(name, str) and name in _DOTS:
        raise ValidationFailed(f"Invalid {what} {name!r}: '.' and '..' cannot be names (URLs "
                               "resolve them away); use other characters.",
                               {field: ["'.' and '..' cannot be names."]})
    if not isinstance(name, str) or not rule.pattern.fullmatch(name):
        raise ValidationFailed(f"Invalid {what} {name!r}: use {rule.allowed}.",
                               {field: [f"Use {rule.allowed}."]})
    return name
