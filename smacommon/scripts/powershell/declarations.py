"""Parameter declarations: the `param(...)` block a runbook binds, as sma's declarations.

The parameters come from the script's own `param(...)` block or, when the script is a single
`workflow Name { ... }` (SMA style) or `function Name { ... }`, from that definition, which
the worker's host script then calls. An integer parameter carries the range of its
PowerShell type ([int] is Int32, [byte] 0 to 255) as `minimum` and `maximum`, so a start
with a value PowerShell could not bind is refused before any worker sees it.
"""

from __future__ import annotations

import re
from typing import Any

from smacommon.errors import JsonRefused, ScriptError, ValidationFailed
from smacommon.parameters import INT_MAX, INT_MIN, coerce, declaration
from smacommon.scripts.powershell.literals import RANGES, literal_value
from smacommon.scripts.powershell.nodes import child, position, text
from smacommon.strictjson import check_value

_STRING_TYPES = {"string", "char", "guid", "uri"}
# PowerShell's integer types by every name they go by, and the range each holds
_INTEGER_KINDS = {
    "sbyte": "sbyte", "byte": "byte", "int16": "int16", "short": "int16", "uint16": "uint16",
    "ushort": "uint16", "int": "int32", "int32": "int32", "uint32": "uint32", "uint": "uint32",
    "int64": "int64", "long": "int64", "uint64": "uint64", "ulong": "uint64",
}
_INT_TYPES = set(_INTEGER_KINDS) | {"bigint", "numerics.biginteger"}
_FLOAT_TYPES = {"double", "float", "single", "decimal"}
_BOOL_TYPES = {
    "bool", "boolean", "switch", "switchparameter", "management.automation.switchparameter",
}
_DATETIME_TYPES = {"datetime", "datetimeoffset"}
_LIST_TYPES = {
    "array", "collections.arraylist", "arraylist", "collections.ilist",
    "collections.generic.list", "list", "collections.generic.ilist", "ilist",
    "collections.generic.ienumerable", "collections.ienumerable",
}
_OBJECT_TYPES = {
    "hashtable", "collections.hashtable", "pscustomobject", "psobject",
    "management.automation.pscustomobject", "management.automation.psobject",
    "collections.idictionary", "idictionary", "collections.specialized.ordereddictionary",
    "collections.generic.dictionary", "dictionary", "collections.generic.idictionary",
}
_SWITCH_TYPES = {"switch", "switchparameter", "management.automation.switchparameter"}
# parameters of these types are secret (sealed at rest, shown as ***, masked in the output)
_SECURE_STRING_TYPES = {"securestring", "security.securestring"}
_SECRET_TYPES = _SECURE_STRING_TYPES | {"pscredential", "management.automation.pscredential"}
_PARAMETER_ATTRIBUTES = {
    "parameter", "parameterattribute", "system.management.automation.parameter",
    "system.management.automation.parameterattribute",
}


class _Empty:
    named_children: list[Any] = []


_EMPTY = _Empty()


def parameter_list(root: Any) -> Any:
    """The `parameter_list` the runbook binds: the script's, or its single definition's."""
    for node in root.children:
        if node.type == "param_block":
            return child(node, "parameter_list") or _EMPTY
    statements = child(root, "statement_list")
    if statements is None:
        return None
    named = [c for c in statements.named_children
             if c.type not in ("comment", "empty_statement")]
    if len(named) != 1 or named[0].type != "function_statement":
        return None
    function = named[0]
    declared = child(function, "function_parameter_declaration")
    if declared is not None:
        return child(declared, "parameter_list") or _EMPTY
    body = child(function, "script_block")
    block = child(body, "param_block") if body is not None else None
    if block is None:
        return None
    return child(block, "parameter_list") or _EMPTY


def declarations(parameters: Any, source: bytes) -> list[dict[str, Any]]:
    """sma's declarations of the parameters in `parameters` (a `parameter_list` node)."""
    result: list[dict[str, Any]] = []
    seen: dict[str, Any] = {}
    for node in parameters.named_children:
        if node.type != "script_parameter":
            continue
        variable = child(node, "variable")
        if variable is None:
            continue
        name = _variable_name(text(variable, source))
        if name.lower() in seen:
            first = seen[name.lower()]
            line, column = position(variable, source)
            raise ScriptError(
                f"PowerShell syntax error: duplicate parameter ${name}: PowerShell parameter "
                f"names ignore case, and ${_variable_name(text(first, source))} is declared on "
                f"line {position(first, source)[0]}", line, column)
        seen[name.lower()] = variable
        result.append(_declaration(node, name, variable, source))
    return result


def _declaration(node: Any, name: str, variable: Any, source: bytes) -> dict[str, Any]:
    type_name, mandatory = _attributes(child(node, "attribute_list"), source)
    normalized = _normalize(type_name) if type_name is not None else ""
    ps_type = _map_type(type_name)
    is_switch = normalized in _SWITCH_TYPES
    try:
        decl = declaration(name, ps_type, bool(mandatory) and not is_switch,
                           normalized in _SECRET_TYPES)
    except ValidationFailed as exc:
        line, column = position(variable, source)
        raise ScriptError(exc.message, line, column) from None
    kind = _integer_kind(type_name)
    if kind is not None and RANGES[kind] != (INT_MIN, INT_MAX):
        low, high = RANGES[kind]
        # sma carries integers as 64-bit signed: a [ulong] stops at 2^63 - 1 there
        decl["minimum"], decl["maximum"] = max(low, INT_MIN), min(high, INT_MAX)
    default_node = child(node, "script_parameter_default")
    found, value = _default(default_node, source) if default_node is not None else (False, None)
    if is_switch and default_node is None:
        found, value = True, False  # a switch not given is off
    if not found or decl["mandatory"]:
        return decl  # PowerShell never uses the default of a mandatory parameter
    if kind is not None and isinstance(value, int | float) and not isinstance(value, bool) \
            and not RANGES[kind][0] <= value <= RANGES[kind][1]:
        low, high = RANGES[kind]
        line, column = position(default_node, source)
        raise ScriptError(f"PowerShell parameter ${name}: its default {value} is beyond the "
                          f"range of [{type_name}] ({low} to {high})", line, column)
    if ps_type == "list" and value is not None and not isinstance(value, list):
        value = [value]
    try:
        value = coerce(decl, value)
        check_value(value)
    except (ValidationFailed, JsonRefused):
        return decl  # PowerShell converts more than sma does, or sma cannot keep the value
    decl["default"] = value
    return decl


def _default(default: Any, source: bytes) -> tuple[bool, Any]:
    values = [c for c in default.named_children if c.type != "comment"]
    return literal_value(values[0], source) if len(values) == 1 else (False, None)


def _variable_name(written: str) -> str:
    name = written[1:] if written.startswith("$") else written
    if name.startswith("{") and name.endswith("}"):
        name = name[1:-1]
    return name


def _attributes(attribute_list: Any, source: bytes) -> tuple[str | None, bool]:
    """The declared type (the last type literal) and whether every [Parameter()] is Mandatory."""
    type_name = None
    parameter_flags: list[bool] = []
    if attribute_list is None:
        return None, False
    for attribute in attribute_list.named_children:
        if attribute.type != "attribute":
            continue
        literal = child(attribute, "type_literal")
        if literal is not None:
            spec = child(literal, "type_spec")
            type_name = text(spec or literal, source)
            continue
        name_node = child(attribute, "attribute_name")
        if name_node is None or _normalize(text(name_node, source), strip_system=False) \
                not in _PARAMETER_ATTRIBUTES:
            continue
        parameter_flags.append(_is_mandatory(child(attribute, "attribute_arguments"), source))
    return type_name, bool(parameter_flags) and all(parameter_flags)


def _is_mandatory(arguments: Any, source: bytes) -> bool:
    if arguments is None:
        return False
    for argument in arguments.named_children:
        if argument.type != "attribute_argument":
            continue
        key = child(argument, "simple_name")
        if key is None or text(key, source).lower() != "mandatory":
            continue
        values = [c for c in argument.named_children if c.type != "simple_name"]
        if not values:
            return True  # [Parameter(Mandatory)]
        found, value = literal_value(values[0], source)
        if not found:
            return True  # an expression: PowerShell converts it to bool; assume it says yes
        return bool(value)
    return False


def _normalize(type_name: str, strip_system: bool = True) -> str:
    name = re.sub(r"\s+", "", type_name).lower()
    if strip_system and name.startswith("system."):
        name = name[len("system."):]
    return name


def _integer_kind(type_name: str | None) -> str | None:
    """The integer type ("int32", "byte", ...) a [type] names, through [Nullable[...]]."""
    if type_name is None:
        return None
    name = _normalize(type_name)
    nullable = re.fullmatch(r"nullable(?:`1)?\[(.*)\]", name)
    if nullable:
        return _integer_kind(nullable.group(1))
    return _INTEGER_KINDS.get(name)


def _map_type(type_name: str | None) -> str:
    if type_name is None:
        return "any"
    name = _normalize(type_name)
    if name.endswith("]"):
        if name.endswith("[]") or re.search(r"\[,*\]$", name):
            return "list"
        base = name.split("[", 1)[0].removeprefix("system.")
        base = base.split("`", 1)[0]
        if base in _LIST_TYPES:
            return "list"
        if base in _OBJECT_TYPES:
            return "object"
        if base == "nullable":
            return _map_type(name[name.index("[") + 1:-1])
        return "any"
    for types, mapped in ((_STRING_TYPES | _SECURE_STRING_TYPES, "string"), (_INT_TYPES, "int"),
                          (_FLOAT_TYPES, "float"), (_BOOL_TYPES, "bool"),
                          (_DATETIME_TYPES, "datetime"), (_LIST_TYPES, "list"),
                          (_OBJECT_TYPES, "object")):
        if name in types:
            return mapped
    return "any"
