"""Python runbooks: `compile()` finds syntax errors, `ast` reads the `main(...)` signature.

A parameter is secret when annotated `Secret` (`from smarunbook import Secret`, a str) or
named in a module-level `SECRET_PARAMETERS = ["name", ...]`.
"""

from __future__ import annotations

import ast
from typing import Any

from smacommon.errors import ScriptError
from smacommon.parameters import declaration

_TYPES = {
    "str": "string", "int": "int", "float": "float", "bool": "bool", "list": "list",
    "tuple": "list", "set": "list", "List": "list", "Tuple": "list", "Sequence": "list",
    "dict": "object", "Dict": "object", "Mapping": "object", "datetime": "datetime",
}


def analyze(content: str) -> list[dict[str, Any]]:
    try:
        tree = compile(content, "<runbook>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
        compile(tree, "<runbook>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise ScriptError(f"Python syntax error: {exc.msg}", exc.lineno, exc.offset) from None
    except ValueError as exc:  # e.g. source with NUL bytes
        raise ScriptError(f"Python cannot read the script: {exc}") from None
    main = find_main(tree)
    return parameters_of(main, _secret_list(tree)) if main is not None else []


def find_main(tree: ast.Module) -> ast.FunctionDef | None:
    """The module-level `def main(...)`, if the script has one."""
    found = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "main":
            found = node
    return found


def parameters_of(func: ast.FunctionDef, secret: frozenset[str] = frozenset()
                  ) -> list[dict[str, Any]]:
    args = func.args
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    pairs = list(zip(positional, defaults, strict=True))
    pairs += list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
    result = []
    for arg, default in pairs:
        is_secret = arg.arg in secret or _is_secret(arg.annotation)
        type_ = "string" if _is_secret(arg.annotation) else _annotation_type(arg.annotation)
        decl = declaration(arg.arg, type_, default is None, is_secret)
        if default is not None:
            try:
                decl["default"] = ast.literal_eval(default)
            except ValueError:
                pass  # computed default: the function applies it itself
        result.append(decl)
    return result


def _secret_list(tree: ast.Module) -> frozenset[str]:
    """The names in a module-level `SECRET_PARAMETERS = [...]` (a list, tuple or set of
    strings)."""
    names: set[str] = set()
    for node in tree.body:
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and target.id == "SECRET_PARAMETERS" \
                and isinstance(value, ast.List | ast.Tuple | ast.Set):
            names = {e.value for e in value.elts
                     if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return frozenset(names)


def _is_secret(node: ast.expr | None) -> bool:
    """`Secret`, `smarunbook.Secret`, or either with `| None` or in quotes."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return False
    if isinstance(node, ast.BinOp):
        return _is_secret(node.left) or _is_secret(node.right)
    if isinstance(node, ast.Subscript):  # Optional[Secret]
        return _is_secret(node.slice)
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    return name == "Secret"


def _annotation_type(node: ast.expr | None) -> str:
    if node is None:
        return "any"
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return "any"
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.BinOp):  # `str | None`
        left, right = _annotation_type(node.left), _annotation_type(node.right)
        if right == "any" and isinstance(node.right, ast.Constant) and node.right.value is None:
            return left
        return left if left == right else "any"
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    return _TYPES.get(name or "", "any")
