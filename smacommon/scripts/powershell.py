"""PowerShell runbooks: tree-sitter-powershell finds syntax errors and reads the `param(...)` block.

No `pwsh` is needed. The parameters come from the script's own `param(...)` block or, when the
script is a single `workflow Name { ... }` (SMA style) or `function Name { ... }`, from that
definition, which the worker's host script then calls.

The grammar rejects a few things PowerShell accepts: bare words in a list argument
(`Select-Object Name, Id`), a statement on the same line after a `param(...)` block or a
switch clause, PowerShell 7's `??`, `??=` and `? :`, a numeric suffix such as `10MB` at the
end of an expression, loop labels after `break`/`continue`, `using` statements, a script
that is only a `param(...)` block, and workflow-only syntax (`foreach -parallel
-throttlelimit N`, `InlineScript { } -PSComputerName ...`). Those are patched in a copy of the
source that keeps every byte offset, and the copy must then parse cleanly; otherwise its
first remaining error is reported. Values (names, types, defaults) and the text quoted in
error messages always come from the original source.
"""

from __future__ import annotations

import re
from typing import Any

from smacommon.errors import ScriptError, ValidationFailed
from smacommon.parameters import coerce, declaration

_parser: Any = None

_MAX_REPAIR_PASSES = 25

_STRING_TYPES = {"string", "char", "guid", "uri"}
_INT_TYPES = {
    "int", "int32", "int64", "long", "byte", "sbyte", "int16", "short", "uint16", "ushort",
    "uint32", "uint", "uint64", "ulong", "bigint", "numerics.biginteger",
}
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
# single-child wrappers the grammar puts around every expression
_WRAPPERS = {
    "pipeline", "pipeline_chain", "logical_expression", "bitwise_expression",
    "comparison_expression", "additive_expression", "multiplicative_expression",
    "format_expression", "range_expression", "array_literal_expression", "unary_expression",
    "parenthesized_expression",
}
_OPENERS = {"(": ")", "@(": ")", "$(": ")", "{": "}", "@{": "}", "[": "]"}
_CLOSERS = {")", "}", "]"}
_QUOTES = {"'", '"', "@'", '@"'}
# blocks after which the grammar wants a line break before the next statement
_BLOCKS = {"param_block", "statement_block", "script_block_expression"}
_NUMBER_SUFFIX = re.compile(rb"(?i)(kb|mb|gb|tb|pb|d|l|u|ul|lu|y|uy|s|us|n)")
# workflows' `foreach -parallel -throttlelimit 5 (...)`: the grammar knows only `-parallel`
_THROTTLE = re.compile(r"(?i)(\bforeach\s+-parallel)(\s+-throttlelimit\s+\d+)")
_WORKFLOW_PARAMETER = re.compile(rb"(?i)PS[A-Za-z]+")
_COMMENTS = re.compile(rb"<#.*?#>|#[^\n]*", re.DOTALL)
_USING = re.compile(r"(?i)^\s*using\s+(namespace|module|assembly)\b")
_MULTIPLIERS = {"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}
_INTEGER = re.compile(
    r"(?i)^(0x[0-9a-f]+|0b[01]+|\d+)(ul|lu|uy|us|l|u|y|s|n)?(kb|mb|gb|tb|pb)?$")
_REAL = re.compile(r"(?i)^(\d*\.\d+(?:e[+-]?\d+)?|\d+\.?(?:e[+-]?\d+)?)(d)?(kb|mb|gb|tb|pb)?$")
_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t", "v": "\v"}


def _get_parser() -> Any:
    global _parser
    if _parser is None:
        import tree_sitter as ts
        import tree_sitter_powershell as tsp

        _parser = ts.Parser(ts.Language(tsp.language()))
    return _parser


def analyze(content: str) -> list[dict[str, Any]]:
    """Raise ScriptError naming line and column for a syntax error, else return the parameters."""
    source = _prepare(content)
    if not _COMMENTS.sub(b"", source).strip():
        return []  # empty, or only comments: the grammar wants a statement
    tree = _parse(source)
    parameters = _parameter_list(tree.root_node)
    return _declarations(parameters, source) if parameters is not None else []


# --- parsing -------------------------------------------------------------------------------


def _prepare(content: str) -> bytes:
    """The bytes to parse: no byte order mark, leading `using` statements blanked out."""
    content = content.removeprefix("\ufeff")
    lines = content.split("\n")
    in_comment = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if in_comment:
            in_comment = "#>" not in stripped
            continue
        if not stripped or (stripped.startswith("#") and not stripped.startswith("#>")):
            continue
        if stripped.startswith("<#"):
            in_comment = "#>" not in stripped[2:]
            continue
        if _USING.match(line):
            # `using` must come first in a script; the grammar does not know it
            lines[i] = re.sub(r"[^\r]", " ", line)
            continue
        break
    content = _THROTTLE.sub(lambda m: m.group(1) + " " * len(m.group(2)), "\n".join(lines))
    # the grammar wants a line end after the last statement (e.g. after a lone `param(...)`)
    return content.encode("utf-8") + b"\n"


def _parse(source: bytes) -> Any:
    parser = _get_parser()
    tree = parser.parse(source)
    if not tree.root_node.has_error:
        return tree
    text = bytearray(source)
    state = {"ternary": False}
    for _ in range(_MAX_REPAIR_PASSES):
        if not _repair(tree.root_node, text, state):
            break
        tree = parser.parse(bytes(text))
        if not tree.root_node.has_error:
            return tree
    # the patched parse has only the real errors left, at the original offsets
    raise _syntax_error(tree.root_node, source)


def _errors(node: Any) -> list[Any]:
    """ERROR and MISSING nodes, in source order."""
    found: list[Any] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if current.is_error or current.is_missing:
            found.append(current)
        if current.has_error:
            stack.extend(reversed(current.children))
    return found


def _repair(root: Any, text: bytearray, state: dict[str, bool]) -> bool:
    """Patch, in place and keeping every byte offset, what the grammar wrongly rejects."""
    changed = _repair_word_lists(root, text)
    for error in _errors(root):
        if error.is_missing:
            if error.type == ";" and not _COMMENTS.sub(b"", bytes(text[error.start_byte:])).strip():
                text.extend(b";\n")  # a script that is only a `param(...)` block
                changed = True
            continue
        children = error.children
        if not children:
            changed |= _repair_operator(error, text, state) or _repair_letters(error, text)
            continue
        kinds = [c.type for c in children]
        if kinds == ["break", "simple_name"] or kinds == ["continue", "simple_name"]:
            label = children[1]  # `break outer`: the grammar knows no loop labels
            text[label.start_byte:label.end_byte] = b" " * (label.end_byte - label.start_byte)
            changed = True
            continue
        for child in children:
            if child.type in _BLOCKS:
                end = child.end_byte
                rest = bytes(text[end:]).split(b"\n", 1)[0]
                if rest[:1] in (b" ", b"\t") and rest.strip()[:1] not in (b"", b"#", b";"):
                    text[end] = ord("\n")
                    changed = True
            elif child.type == "simple_name" and len(children) == 1 \
                    and _WORKFLOW_PARAMETER.fullmatch(child.text or b"") \
                    and text[child.start_byte - 1:child.start_byte] == b"-":
                # `InlineScript { } -PSComputerName $c`: workflow activities' common parameters,
                # unknown to the grammar; blanked with their arguments to the end of the line
                end = text.find(b"\n", child.end_byte)
                end = len(text) if end == -1 else end
                start = child.start_byte - 1
                text[start:end] = re.sub(rb"[^\r]", b" ", bytes(text[start:end]))
                changed = True
            elif child.type == "simple_name" and _NUMBER_SUFFIX.fullmatch(child.text or b""):
                before = text[child.start_byte - 1:child.start_byte]
                if before.isdigit() or before == b".":
                    text[child.start_byte:child.end_byte] = b"0" * (child.end_byte
                                                                    - child.start_byte)
                    changed = True
            elif child.is_error and not child.children:
                changed |= _repair_operator(child, text, state) or _repair_letters(child, text)
            elif child.type == ":" and state["ternary"]:
                colon = text.find(b":", child.start_byte, child.end_byte)
                if text[colon - 1:colon].isspace() and text[colon + 1:colon + 2].isspace():
                    text[colon] = ord("+")
                    changed = True
    return changed


def _repair_word_lists(root: Any, text: bytearray) -> bool:
    """`Select-Object Name, Id`: bare words in a list argument become numbers of their length.

    The grammar takes a list argument only of expressions; PowerShell also of bare words.
    """
    changed = False
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "command":
            name = _child(node, "command_name")
            if name is not None:
                for start, end in _listed_words(text, name.end_byte):
                    text[start:end] = b"0" * (end - start)
                    changed = True
        stack.extend(node.children)
    return changed


def _listed_words(text: bytearray, i: int) -> list[tuple[int, int]]:
    """Byte ranges of the bare words next to a comma in the arguments that start at `i`."""
    items: list[tuple[str, int, int]] = []
    n = len(text)
    while i < n:
        c = text[i:i + 1]
        following = text[i + 1:i + 2]
        if c in (b" ", b"\t", b"\r"):
            i += 1
        elif c == b"`" and following in (b"\n", b"\r"):
            i += 2
        elif c == b"\n":
            if not items or items[-1][0] != ",":
                break
            i += 1  # a list continues on the next line after a comma
        elif c in (b";", b"|", b"&", b")", b"}", b"#") or (c == b"<" and following == b"#"):
            break
        elif c == b",":
            items.append((",", i, i + 1))
            i += 1
        elif c in (b"'", b'"') or (c == b"@" and following in (b"'", b'"')):
            start, i = i, _skip_string(text, i)
            items.append(("value", start, i))
        elif c in (b"(", b"[", b"{") or (c in (b"$", b"@") and following in (b"(", b"{")):
            start, i = i, _skip_group(text, i)
            items.append(("value", start, i))
        else:
            start = i
            while i < n and text[i:i + 1] not in (b" ", b"\t", b"\r", b"\n", b",", b";", b"|",
                                                   b")", b"}", b"(", b"{", b"'", b'"'):
                i += 1
            if i == start:
                break
            word = bytes(text[start:i])
            bare = word[:1] not in (b"$", b"-", b"@", b"[") and not word[:1].isdigit() \
                and not (word[:1] == b"." and word[1:2].isdigit())
            items.append(("word" if bare else "value", start, i))
    words = []
    for k, (kind, start, end) in enumerate(items):
        if kind != "word":
            continue
        before = items[k - 1][0] if k > 0 else ""
        after = items[k + 1][0] if k + 1 < len(items) else ""
        if "," in (before, after):
            words.append((start, end))
    return words


def _skip_string(text: bytearray, i: int) -> int:
    if text[i:i + 1] == b"@":  # here-string: to a line that starts with the closing quote
        quote = text[i + 1:i + 2]
        end = text.find(b"\n" + quote + b"@", i)
        return len(text) if end == -1 else end + 3
    quote = text[i:i + 1]
    i += 1
    while i < len(text):
        c = text[i:i + 1]
        if c == b"`" and quote == b'"':
            i += 2
        elif c == quote:
            if text[i + 1:i + 2] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return i


def _skip_group(text: bytearray, i: int) -> int:
    if text[i:i + 1] in (b"$", b"@"):
        i += 1
    depth = 0
    while i < len(text):
        c = text[i:i + 1]
        if c in (b"(", b"[", b"{"):
            depth += 1
        elif c in (b")", b"]", b"}"):
            depth -= 1
            if depth == 0:
                return i + 1
        elif c in (b"'", b'"'):
            i = _skip_string(text, i)
            continue
        elif c == b"`":
            i += 1
        i += 1
    return i


def _repair_letters(error: Any, text: bytearray) -> bool:
    """`$größe`: the grammar takes only ASCII letters in names, PowerShell any letter."""
    segment = bytes(text[error.start_byte:error.end_byte]).decode("utf-8", errors="replace")
    if not segment or not segment.isalpha() or segment.isascii():
        return False
    text[error.start_byte:error.end_byte] = b"a" * (error.end_byte - error.start_byte)
    return True


def _repair_operator(error: Any, text: bytearray, state: dict[str, bool]) -> bool:
    """PowerShell 7's `??`, `??=` and ternary `?` become `+`, `+=`, `+` of the same length."""
    segment = bytes(text[error.start_byte:error.end_byte])
    if segment.strip() not in (b"?", b"??"):
        return False
    start = error.start_byte + segment.index(b"?")
    after = text[error.end_byte:error.end_byte + 1]
    if segment.strip() == b"?":
        if after not in (b" ", b"\t", b"\n", b"\r", b""):
            return False  # `?.` / `?[` null-conditional access: left as an error
        text[start] = ord("+")
        state["ternary"] = True  # its `:` comes next
    elif after == b"=":
        text[start:start + 3] = b"+= "
    else:
        text[start:start + 2] = b"+ "
    return True


# --- syntax errors --------------------------------------------------------------------------


def _syntax_error(root: Any, source: bytes) -> ScriptError:
    errors = [root] if root.is_error else _errors(root)
    if not errors:
        return ScriptError("PowerShell syntax error", 1, 1)
    first = errors[0]
    if first.is_missing:
        message, node = _missing(first)
    else:
        message, node = _explain(first, source) or _incomplete(first, source)
    line, column = _position(node, source)
    return ScriptError(f"PowerShell syntax error: {message}", line, column)


def _position(node_or_byte: Any, source: bytes) -> tuple[int, int]:
    """1-based line and column (in characters) of a node or a byte offset."""
    offset = node_or_byte if isinstance(node_or_byte, int) else node_or_byte.start_byte
    line_start = source.rfind(b"\n", 0, offset) + 1
    column = len(source[line_start:offset].decode("utf-8", errors="replace")) + 1
    return source.count(b"\n", 0, offset) + 1, column


def _missing(node: Any) -> tuple[str, Any]:
    kind = node.type
    if kind in _CLOSERS and node.parent is not None:
        opener = None
        stack: list[Any] = []
        for sibling in node.parent.children:
            if sibling == node:
                break
            if sibling.type in _OPENERS:
                stack.append(sibling)
            elif sibling.type in _CLOSERS and stack:
                stack.pop()
        for candidate in reversed(stack):
            if _OPENERS[candidate.type] == kind:
                opener = candidate
                break
        if opener is not None:
            return f"missing closing '{kind}' for this '{opener.type}'", opener
        return f"missing closing '{kind}'", node
    if kind.isidentifier():  # a named node, e.g. `variable`
        return f"missing {kind.replace('_', ' ')}", node
    return f"missing '{kind}'", node


def _explain(error: Any, source: bytes) -> tuple[str, Any] | None:
    """The first thing wrong inside an ERROR node: an unclosed bracket, a stray token."""
    openers: list[Any] = []
    bad: tuple[str, Any] | None = None
    position = error.start_byte
    for child in error.children:
        if bad is None:
            bad = _gap(source, position, child.start_byte)
        if bad is None:
            if child.is_missing:
                bad = _missing(child)
            elif child.is_error:
                bad = _explain(child, source)
            elif child.child_count == 0:
                if child.type in _OPENERS:
                    openers.append(child)
                elif child.type in _CLOSERS:
                    if openers and _OPENERS[openers[-1].type] == child.type:
                        openers.pop()
                    else:
                        bad = (f"unexpected '{child.type}'", child)
                elif child.type in _QUOTES:
                    bad = ("unterminated string", child)
        elif child.child_count == 0 and child.type in _OPENERS:
            openers.append(child)
        position = max(position, child.end_byte)
    if bad is None:
        bad = _gap(source, position, error.end_byte)
    if bad is None and error.children and not error.named_children and not openers:
        token = error.children[0]  # nothing but stray tokens, e.g. `1 +* 2`
        bad = (f"unexpected '{_short(_text(token, source))}'", token)
    if openers:
        first_open = openers[0]
        if bad is None or first_open.start_byte < _byte(bad[1]):
            closer = _OPENERS[first_open.type]
            return f"missing closing '{closer}' for this '{first_open.type}'", first_open
    return bad


def _byte(node_or_byte: Any) -> int:
    return node_or_byte if isinstance(node_or_byte, int) else node_or_byte.start_byte


def _gap(source: bytes, start: int, end: int) -> tuple[str, int] | None:
    """Text the parser skipped between two children of an ERROR node."""
    text = source[start:end]
    stripped = text.lstrip()
    if not stripped:
        return None
    offset = start + len(text) - len(stripped)
    token = stripped.split(None, 1)[0].decode("utf-8", errors="replace")
    if token[:1] in ("'", '"', "\u2018", "\u2019", "\u201c", "\u201d") or token[:2] in ("@'", '@"'):
        return "unterminated string", offset
    return f"unexpected '{_short(token)}'", offset


def _incomplete(error: Any, source: bytes) -> tuple[str, Any]:
    """An ERROR node whose parts all parsed: the statement stops too early."""
    leaf = error
    while leaf.child_count:
        leaf = leaf.children[-1]
    text = _text(leaf, source).strip()
    if not text:
        text = _text(error, source).strip()
        return f"incomplete statement '{_short(text)}'", error
    return f"incomplete statement: nothing valid follows '{_short(text)}'", leaf


def _short(text: str, limit: int = 30) -> str:
    text = text.splitlines()[0] if text else text
    return text if len(text) <= limit else text[:limit] + "…"


# --- parameters -----------------------------------------------------------------------------


def _parameter_list(root: Any) -> Any:
    """The `parameter_list` the runbook binds: the script's, or its single definition's."""
    for child in root.children:
        if child.type == "param_block":
            return _child(child, "parameter_list") or _EMPTY
    statements = _child(root, "statement_list")
    if statements is None:
        return None
    named = [c for c in statements.named_children
             if c.type not in ("comment", "empty_statement")]
    if len(named) != 1 or named[0].type != "function_statement":
        return None
    function = named[0]
    declared = _child(function, "function_parameter_declaration")
    if declared is not None:
        return _child(declared, "parameter_list") or _EMPTY
    body = _child(function, "script_block")
    block = _child(body, "param_block") if body is not None else None
    if block is None:
        return None
    return _child(block, "parameter_list") or _EMPTY


class _Empty:
    named_children: list[Any] = []


_EMPTY = _Empty()


def _child(node: Any, kind: str) -> Any:
    for child in node.children:
        if child.type == kind:
            return child
    return None


def _text(node: Any, source: bytes) -> str:
    """A node's text in the original source (a repaired parse keeps the byte offsets)."""
    return source[node.start_byte:node.end_byte].decode("utf-8", errors="replace")


def _declarations(parameter_list: Any, source: bytes) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    seen: dict[str, Any] = {}
    for node in parameter_list.named_children:
        if node.type != "script_parameter":
            continue
        variable = _child(node, "variable")
        if variable is None:
            continue
        name = _variable_name(_text(variable, source))
        if name.lower() in seen:
            line, column = _position(variable, source)
            raise ScriptError(f"PowerShell syntax error: duplicate parameter ${name}", line, column)
        seen[name.lower()] = node
        type_name, mandatory = _attributes(_child(node, "attribute_list"), source)
        ps_type = _map_type(type_name)
        is_switch = type_name is not None and _normalize(type_name) in _SWITCH_TYPES
        is_secret = type_name is not None and _normalize(type_name) in _SECRET_TYPES
        try:
            decl = declaration(name, ps_type, bool(mandatory) and not is_switch, is_secret)
        except ValidationFailed as exc:
            line, column = _position(variable, source)
            raise ScriptError(exc.message, line, column) from None
        default_node = _child(node, "script_parameter_default")
        found, value = (_literal(default_node, source) if default_node is not None
                        else (False, None))
        if is_switch and default_node is None:
            found, value = True, False  # a switch not given is off
        if found and not decl["mandatory"]:
            if ps_type == "list" and value is not None and not isinstance(value, list):
                value = [value]
            try:
                decl["default"] = coerce(decl, value)
            except ValidationFailed:
                pass  # PowerShell would fail to convert it too; leave the default out
        result.append(decl)
    return result


def _variable_name(text: str) -> str:
    name = text[1:] if text.startswith("$") else text
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
        literal = _child(attribute, "type_literal")
        if literal is not None:
            spec = _child(literal, "type_spec")
            type_name = _text(spec or literal, source)
            continue
        name_node = _child(attribute, "attribute_name")
        if name_node is None or _normalize(_text(name_node, source), strip_system=False) \
                not in _PARAMETER_ATTRIBUTES:
            continue
        parameter_flags.append(_is_mandatory(_child(attribute, "attribute_arguments"), source))
    return type_name, bool(parameter_flags) and all(parameter_flags)


def _is_mandatory(arguments: Any, source: bytes) -> bool:
    if arguments is None:
        return False
    for argument in arguments.named_children:
        if argument.type != "attribute_argument":
            continue
        key = _child(argument, "simple_name")
        if key is None or _text(key, source).lower() != "mandatory":
            continue
        values = [c for c in argument.named_children if c.type != "simple_name"]
        if not values:
            return True  # [Parameter(Mandatory)]
        found, value = _literal_value(values[0], source)
        if not found:
            return True  # an expression: PowerShell converts it to bool; assume it says yes
        return bool(value)
    return False


def _normalize(type_name: str, strip_system: bool = True) -> str:
    name = re.sub(r"\s+", "", type_name).lower()
    if strip_system and name.startswith("system."):
        name = name[len("system."):]
    return name


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


def _literal(default: Any, source: bytes) -> tuple[bool, Any]:
    values = [c for c in default.named_children if c.type != "comment"]
    return _literal_value(values[0], source) if len(values) == 1 else (False, None)


def _literal_value(node: Any, source: bytes) -> tuple[bool, Any]:
    """(True, value) when the expression is a plain literal, else (False, None)."""
    sign = 1
    while True:
        named = [c for c in node.named_children if c.type != "comment"]
        if node.type in _WRAPPERS and len(named) == 1:
            node = named[0]
        elif node.type == "expression_with_unary_operator" and len(named) == 1 \
                and node.children[0].type in ("-", "+"):
            if node.children[0].type == "-":
                sign = -sign
            node = named[0]
        else:
            break
    text = _text(node, source)
    if node.type == "integer_literal":
        number = _integer(text)
        return (True, sign * number) if number is not None else (False, None)
    if node.type == "real_literal":
        real = _real(text)
        return (True, sign * real) if real is not None else (False, None)
    if sign != 1:
        return False, None
    if node.type == "variable":
        lowered = text.lower()
        if lowered in ("$true", "$false"):
            return True, lowered == "$true"
        if lowered == "$null":
            return True, None
        return False, None
    if node.type == "string_literal":
        return _string(node, text)
    return False, None


def _integer(text: str) -> int | None:
    match = _INTEGER.match(text)
    if not match:
        return None
    digits, _suffix, multiplier = match.groups()
    if digits[:2].lower() == "0x":
        value = int(digits[2:], 16)
    elif digits[:2].lower() == "0b":
        value = int(digits[2:], 2)
    else:
        value = int(digits)
    return value * _MULTIPLIERS.get((multiplier or "").lower(), 1)


def _real(text: str) -> float | None:
    match = _REAL.match(text)
    if not match:
        return None
    value = float(match.group(1))
    return value * _MULTIPLIERS.get((match.group(3) or "").lower(), 1)


def _string(node: Any, text: str) -> tuple[bool, Any]:
    kinds = {c.type for c in node.named_children}
    if "verbatim_string_characters" in kinds and text[:1] in ("'", "\u2018", "\u2019"):
        return True, text[1:-1].replace("''", "'")
    if "verbatim_here_string_characters" in kinds and text.startswith("@'"):
        return True, _here_string_body(text)
    if "expandable_string_literal" in kinds or "expandable_here_string_literal" in kinds:
        inner = node.named_children[0]
        if inner.named_children:
            return False, None  # $variable or $(...) inside: computed at run time
        if text.startswith('@"'):
            body = _here_string_body(text)
        else:
            body = text[1:-1].replace('""', '"')
        value = _unescape(body)
        return (True, value) if value is not None else (False, None)
    return False, None


def _here_string_body(text: str) -> str:
    body = text[2:-2]
    body = body.split("\n", 1)[1] if "\n" in body else ""
    return body.removesuffix("\n").removesuffix("\r")


def _unescape(body: str) -> str | None:
    """Backtick escapes of a double-quoted string; None when it still interpolates."""
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "`" and i + 1 < len(body):
            following = body[i + 1]
            if following == "u" and body[i + 2:i + 3] == "{":
                end = body.find("}", i + 3)
                if end == -1:
                    return None
                out.append(chr(int(body[i + 3:end], 16)))
                i = end + 1
                continue
            out.append(_ESCAPES.get(following, following))
            i += 2
            continue
        if char == "$" and i + 1 < len(body) and (body[i + 1].isalnum()
                                                   or body[i + 1] in "_{(:?^"):
            return None
        out.append(char)
        i += 1
    return "".join(out)
