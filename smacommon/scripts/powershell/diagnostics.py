"""Diagnostics: the first real error left in a parse, as a message naming its line and column."""

from __future__ import annotations

from typing import Any

from smacommon.errors import ScriptError
from smacommon.scripts.powershell.nodes import error_nodes, position
from smacommon.scripts.powershell.nodes import text as node_text

_OPENERS = {"(": ")", "@(": ")", "$(": ")", "{": "}", "@{": "}", "[": "]"}
_CLOSERS = {")", "}", "]"}
_QUOTES = {"'", '"', "@'", '@"'}


def syntax_error(root: Any, source: bytes) -> ScriptError:
    """The first error in a parse that did not succeed, at its line and column."""
    errors = [root] if root.is_error else error_nodes(root)
    if not errors:
        return ScriptError("PowerShell syntax error", 1, 1)
    first = errors[0]
    if first.is_missing:
        message, node = _missing(first)
    else:
        message, node = _explain(first, source) or _incomplete(first, source)
    line, column = position(node, source)
    return ScriptError(f"PowerShell syntax error: {message}", line, column)


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
        bad = (f"unexpected '{_short(node_text(token, source))}'", token)
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
    text = node_text(leaf, source).strip()
    if not text:
        text = node_text(error, source).strip()
        return f"incomplete statement '{_short(text)}'", error
    return f"incomplete statement: nothing valid follows '{_short(text)}'", leaf


def _short(text: str, limit: int = 30) -> str:
    text = text.splitlines()[0] if text else text
    return text if len(text) <= limit else text[:limit] + "…"
