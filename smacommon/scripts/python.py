"""Python runbooks: `compile()` finds syntax errors, `ast` reads the `main(...)` signature.

Like Azure Automation, sma runs a script as a script: its `if __name__ == "__main__":`
block runs and the start's parameters arrive in `sys.argv`. Only a script with a
module-level `main` and no such block is called as `main(**parameters)` (`main_entry`),
and only then are `main`'s arguments the runbook's parameters. The worker decides the same
way from the same function.

A parameter is secret when annotated `Secret` (`from smarunbook import Secret`, a str) or
named in a module-level `SECRET_PARAMETERS = ["name", ...]`.
"""

from __future__ import annotations

import ast
from typing import Any

from smacommon.errors import ScriptError
from smacommon.parameters import declaration
from smacommon.scripts.python2 import print_redirect, python2_sign

_TYPES = {
    "str": "string", "int": "int", "float": "float", "bool": "bool", "list": "list",
    "tuple": "list", "set": "list", "List": "list", "Tuple": "list", "Sequence": "list",
    "dict": "object", "Dict": "object", "Mapping": "object", "datetime": "datetime",
}
PYTHON2 = "sma runs Python 3 runbooks; this looks like Python 2"


def analyze(content: str) -> list[dict[str, Any]]:
    """The runbook's parameters; ScriptError, with line and column, for what Python 3
    refuses."""
    try:
        tree = compile(content, "<runbook>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
        compile(tree, "<runbook>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        sign = python2_sign(exc)
        if sign is None:
            raise ScriptError(f"Python syntax error: {exc.msg}", exc.lineno, exc.offset) from None
        raise ScriptError(f"{PYTHON2} ({sign.cause}); Python 3 writes {sign.fix}",
                          exc.lineno, sign.column) from None
    except ValueError as exc:  # e.g. source with NUL bytes
        raise ScriptError(f"Python cannot read the script: {exc}") from None
    redirected = print_redirect(tree)
    if redirected is not None:
        raise ScriptError(f"{PYTHON2} (print >>f); Python 3 writes print(..., file=f)",
                          redirected.lineno, redirected.col_offset + 1)
    main = main_entry(tree)
    return parameters_of(main, _secret_list(tree)) if main is not None else []


def arguments_refusal(content: str) -> str | None:
    """A Python runbook takes positional arguments when it runs as a script; one whose
    main() sma calls takes named parameters only."""
    if calls_main(content):
        return ("This Python runbook defines main(), which sma calls with the named "
                "parameters (main(**parameters)); give the values in parameters. A script "
                "without main runs as __main__ and reads positional arguments from "
                "sys.argv.")
    return None


def calls_main(content: str) -> bool:
    """Whether sma runs the script by calling its `main(**parameters)` (True), or runs it as
    `__main__` with the start's values in sys.argv (False). The one place this is decided:
    publishing, the start's checks (positional arguments need a script) and the worker's host
    agree."""
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError):  # a test job of a broken draft: Python reports it
        return False
    return main_entry(tree) is not None


def main_entry(tree: ast.Module) -> ast.FunctionDef | None:
    """The `main` sma calls with the parameters: the module-level `def main(...)` of a script
    with no `if __name__ == "__main__":` block (a script with one runs as a script)."""
    if any(_is_main_guard(node) for node in tree.body):
        return None
    found = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "main":
            found = node
    return found


def _is_main_guard(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":`, either way round."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = {_side(test.left), _side(test.comparators[0])}
    return sides == {"name", "main"}


def _side(node: ast.expr) -> str:
    if isinstance(node, ast.Name) and node.id == "__name__":
        return "name"
    if isinstance(node, ast.Constant) and node.value == "__main__":
        return "main"
    return ""


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
