"""Declared runbook parameters and the validation of the values a start gives them.

A declaration is a plain dict: {"name", "type", "mandatory", "default", "secret", "minimum",
"maximum"} (default only when there is one, secret only when true: the value is then sealed
at rest, shown as *** and masked in the job's output; minimum and maximum only on an int whose
range is narrower than 64 bits, such as PowerShell's [int] or [byte]). Types are a small
vocabulary shared by every engine.
"""

from __future__ import annotations

import json
import keyword
import math
import re
from datetime import datetime
from typing import Any

from smacommon.errors import ValidationFailed
from smacommon.names import PARAMETER, check_name
from smacommon.strictjson import check_value

TYPES = ("string", "int", "float", "bool", "datetime", "list", "object", "any")
# names that would clobber the environment a runbook's process needs (Bash parameters are
# environment variables; names are case-sensitive there, so PowerShell's $Path stays free)
RESERVED_NAMES = frozenset(
    {"PATH", "HOME", "SHELL", "USER", "LANG", "LC_ALL", "TMPDIR", "PWD", "IFS", "BASH_ENV",
     "PYTHONPATH", "LD_PRELOAD", "LD_LIBRARY_PATH"}
)
MAX_PARAMETERS = 100
# an `int` is 64 bits in every engine's hands ([long] in PowerShell, a C long in Bash)
INT_MIN, INT_MAX = -2**63, 2**63 - 1
# parameters reach Bash runbooks as environment variables and arguments, which the kernel
# caps (128 KiB a string, about 2 MiB in all): 64 KiB of JSON in all stays well inside
MAX_PARAMETERS_BYTES = 64 * 1024

_TRUE = {"true", "1", "yes", "$true", "on"}
_FALSE = {"false", "0", "no", "$false", "off"}


def normalize_declarations(raw: Any) -> list[dict[str, Any]]:
    """Check a list of explicit declarations (from the API) and return them in canonical form."""
    if not isinstance(raw, list):
        raise ValidationFailed("parameters must be a list of {name, type, mandatory, default}.",
                               {"parameters": ["Must be a list."]})
    if len(raw) > MAX_PARAMETERS:
        raise ValidationFailed(f"A runbook declares at most {MAX_PARAMETERS} parameters.",
                               {"parameters": ["Too many parameters."]})
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, dict) or "name" not in item:
            raise ValidationFailed("Each parameter declaration needs a name.",
                                   {"parameters": ["Each item needs a name."]})
        unknown = set(item) - {"name", "type", "mandatory", "default", "secret", "minimum",
                               "maximum"}
        if unknown:
            raise ValidationFailed(
                f"Unknown field(s) in parameter declaration: {', '.join(sorted(unknown))}.",
                {"parameters": [f"Unknown field(s): {', '.join(sorted(unknown))}."]})
        decl = declaration(str(item["name"]), str(item.get("type") or "any"),
                           bool(item.get("mandatory", False)), bool(item.get("secret", False)))
        _set_range(decl, item)
        if "default" in item:
            decl["default"] = coerce(decl, item["default"])
        if decl["name"].lower() in seen:
            raise ValidationFailed(f"Parameter {decl['name']} is declared twice.",
                                   {"parameters": [f"{decl['name']} is declared twice."]})
        seen.add(decl["name"].lower())
        result.append(decl)
    return result


def declaration(name: str, type_: str = "any", mandatory: bool = False,
                secret: bool = False) -> dict[str, Any]:
    """One checked declaration."""
    check_name(name, PARAMETER, "parameter name", "parameters")
    if keyword.iskeyword(name):
        raise ValidationFailed(f"Invalid parameter name {name!r}: it is a Python keyword.",
                               {"parameters": [f"Invalid name {name!r}."]})
    if name in RESERVED_NAMES or name.startswith("SMA_"):
        raise ValidationFailed(f"Parameter name {name!r} is reserved.",
                               {"parameters": [f"{name!r} is reserved."]})
    if type_ not in TYPES:
        raise ValidationFailed(
            f"Parameter {name} has unknown type {type_!r}; use one of {', '.join(TYPES)}.",
            {"parameters": [f"Unknown type {type_!r}."]})
    decl: dict[str, Any] = {"name": name, "type": type_, "mandatory": mandatory}
    if secret:
        decl["secret"] = True
    return decl


def _set_range(decl: dict[str, Any], item: dict[str, Any]) -> None:
    """An explicit declaration's minimum and maximum: integers, on an int, in order."""
    if "minimum" not in item and "maximum" not in item:
        return
    name = decl["name"]
    if decl["type"] != "int":
        raise ValidationFailed(f"Parameter {name}: minimum and maximum apply only to an int.",
                               {"parameters": {name: ["minimum and maximum need type int."]}})
    for key in ("minimum", "maximum"):
        bound = item.get(key, INT_MIN if key == "minimum" else INT_MAX)
        if isinstance(bound, bool) or not isinstance(bound, int) \
                or not INT_MIN <= bound <= INT_MAX:
            raise ValidationFailed(
                f"Parameter {name}: {key} must be an integer from {INT_MIN} to {INT_MAX}.",
                {"parameters": {name: [f"Bad {key}."]}})
        decl[key] = bound
    if decl["minimum"] > decl["maximum"]:
        raise ValidationFailed(f"Parameter {name}: minimum is above maximum.",
                               {"parameters": {name: ["minimum is above maximum."]}})


def coerce(decl: dict[str, Any], value: Any) -> Any:
    """Check one value against its declaration, converting strings where the meaning is plain."""
    name, type_ = decl["name"], decl["type"]

    def bad(expected: str) -> ValidationFailed:
        return ValidationFailed(
            f"Parameter {name} must be {expected}; got {_describe(value)}.",
            {"parameters": {name: [f"Must be {expected}."]}})

    if value is None:
        if type_ in ("any", "object", "string"):
            return None
        raise bad(_EXPECTED[type_])
    if type_ == "any":
        return value
    if type_ == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool | int | float):
            return str(value).lower() if isinstance(value, bool) else str(value)
        raise bad("a string")
    if type_ == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad("a boolean (true or false)")
    if type_ == "int":
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d{1,20}\s*", value):
            number = int(value)
        low, high = decl.get("minimum", INT_MIN), decl.get("maximum", INT_MAX)
        if number is None or not low <= number <= high:
            raise bad(f"an integer from {low} to {high}")
        return number
    if type_ == "float":
        if isinstance(value, bool):
            raise bad("a number")
        if isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                raise bad("a finite number")
            return value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise bad("a number") from None
            if math.isfinite(number):
                return number
        raise bad("a number")
    if type_ == "datetime":
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise bad("an ISO 8601 date and time") from None
            return value
        raise bad("an ISO 8601 date and time")
    if type_ == "list":
        if isinstance(value, list):
            return value
        raise bad("a list")
    if type_ == "object":
        if isinstance(value, dict):
            return value
        raise bad("an object")
    raise bad(type_)  # pragma: no cover - TYPES is closed


_EXPECTED = {
    "string": "a string", "int": "an integer", "float": "a number",
    "bool": "a boolean (true or false)", "datetime": "an ISO 8601 date and time",
    "list": "a list", "object": "an object", "any": "a value",
}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "object"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text[:40]}{'…' if len(text) > 40 else ''}"


def validate(declared: list[dict[str, Any]], given: Any) -> dict[str, Any]:
    """Check the parameters of a start against the declarations; return the values to run with.

    Unknown names, missing mandatory values and wrong types are each an error naming the
    parameter. Names match case-insensitively, as in PowerShell; the declared spelling wins.
    """
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ValidationFailed("parameters must be an object of name: value.",
                               {"parameters": ["Must be an object."]})
    check_value(given, "parameters")  # what the API's JSON reader refuses, from every door
    size = len(json.dumps(given, default=str))
    if size > MAX_PARAMETERS_BYTES:
        raise ValidationFailed(f"parameters are {size} bytes of JSON; the limit is "
                               f"{MAX_PARAMETERS_BYTES}. Pass large data through a variable "
                               "asset or a file instead.", {"parameters": ["Too large."]})
    by_lower = {d["name"].lower(): d for d in declared}
    result: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    messages: list[str] = []
    given_as: dict[str, str] = {}
    for key, value in given.items():
        decl = by_lower.get(str(key).lower())
        if decl is None:
            known = ", ".join(d["name"] for d in declared) or "none"
            messages.append(f"Unknown parameter {key} (declared: {known}).")
            errors[str(key)] = ["Unknown parameter."]
            continue
        if decl["name"] in given_as:
            messages.append(f"Parameters {given_as[decl['name']]} and {key} both give "
                            f"{decl['name']} (names ignore case); give it once.")
            errors[str(key)] = [f"Also gives {decl['name']}."]
            continue
        given_as[decl["name"]] = str(key)
        try:
            result[decl["name"]] = coerce(decl, value)
        except ValidationFailed as exc:
            messages.append(exc.message)
            errors[decl["name"]] = [exc.message]
    for decl in declared:
        if decl["name"] in result or decl["name"] in errors:
            continue
        if decl.get("mandatory") and "default" not in decl:
            messages.append(f"Missing mandatory parameter {decl['name']}.")
            errors[decl["name"]] = ["Missing mandatory parameter."]
    if messages:
        raise ValidationFailed(" ".join(messages), {"parameters": errors})
    return result
