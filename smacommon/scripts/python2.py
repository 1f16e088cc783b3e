"""Python 2 in a runbook: the clear signs, named.

sma runs Python 3, as Azure Automation's Python 3 runbooks do. When Python 3 refuses a
script, `python2_cause` reads the error (its message, and the text where it points) and
names the Python 2 construct it stopped at, if it is one; `print_redirect` finds
`print >>f, ...`, which Python 3 compiles but which always fails when it runs.
"""

from __future__ import annotations

import ast
import re
from typing import NamedTuple


class Python2Sign(NamedTuple):
    """A Python 2 construct: what it is, how Python 3 writes it, and its column (1-based)."""

    cause: str
    fix: str
    column: int | None

# what CPython (3.11 to 3.13) says -> the construct, and how Python 3 writes it
_BY_MESSAGE = (
    ("Missing parentheses in call to 'print'", "print statement", "print(...)"),
    ("Missing parentheses in call to 'exec'", "exec statement", "exec(...)"),
    ("multiple exception types must be parenthesized", "except X, e:",
     "except X as e: (several types: except (X, Y) as e:)"),
    ("Function parameters cannot be parenthesized", "tuple parameter",
     "one parameter, unpacked in the body"),
    ("Lambda expression parameters cannot be parenthesized", "tuple parameter",
     "one parameter, unpacked in the body"),
)
_OCTAL = re.compile(r"0[0-9_]+")
_LONG = re.compile(r"(?<![\w.])(0[xX][0-9a-fA-F]+|[0-9]+)[lL](?!\w)")


def python2_sign(exc: SyntaxError) -> Python2Sign | None:
    """The Python 2 construct where Python 3 stopped, or None when the error is not a clear
    sign of Python 2."""
    message = exc.msg or ""
    for start, cause, fix in _BY_MESSAGE:
        if message.startswith(start):
            return Python2Sign(cause, fix, exc.offset)
    text, offset = exc.text, exc.offset
    if not text or not offset or offset > len(text):
        return None
    at = offset - 1
    if message.startswith("leading zeros in decimal integer literals"):
        literal = _OCTAL.match(text, at)
        if literal is None:
            return Python2Sign("octal literal", "0o...", offset)
        digits = literal.group().lstrip("0_") or "0"
        return Python2Sign(f"octal literal {literal.group()}", f"0o{digits}", offset)
    if message.startswith(("invalid decimal literal", "invalid hexadecimal literal")):
        for found in _LONG.finditer(text):
            if found.start() <= at < found.end():
                return Python2Sign(f"long literal {found.group()}", found.group(1),
                                   found.start() + 1)
        return None
    if message != "invalid syntax":
        return None
    if text[at] == "`":
        return Python2Sign("backtick repr", "repr(...)", offset)
    if text.startswith("<>", at):
        return Python2Sign("<> operator", "!=", offset)
    if text[at] in "'\"" and text[max(at - 2, 0):at].lower() == "ur" \
            and (at == 2 or not (text[at - 3].isalnum() or text[at - 3] == "_")):
        return Python2Sign("ur'' string", "r''", offset - 2)
    if text[at] == "," and re.match(r"\s*raise\s", text):
        return Python2Sign("raise E, message", "raise E(message)", offset)
    return None


def print_redirect(tree: ast.Module) -> ast.BinOp | None:
    """The first `print >>f, ...` statement (unless the script names something `print`)."""
    if _rebinds_print(tree):
        return None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Expr):
            continue
        value = node.value
        if isinstance(value, ast.Tuple) and value.elts:
            value = value.elts[0]
        if isinstance(value, ast.BinOp) and isinstance(value.op, ast.RShift) \
                and isinstance(value.left, ast.Name) and value.left.id == "print":
            return value
    return None


def _rebinds_print(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "print" \
                and not isinstance(node.ctx, ast.Load):
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) \
                and node.name == "print":
            return True
        if isinstance(node, ast.alias) and (node.asname or node.name) == "print":
            return True
        if isinstance(node, ast.arg) and node.arg == "print":
            return True
    return False
