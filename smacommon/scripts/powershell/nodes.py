"""The tree-sitter parser and the small helpers every part of the PowerShell reader shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from smacommon.errors import ScriptError

_parser: Any = None


def get_parser() -> Any:
    """One tree-sitter-powershell parser per process, made on first use."""
    global _parser
    if _parser is None:
        import tree_sitter as ts
        import tree_sitter_powershell as tsp

        _parser = ts.Parser(ts.Language(tsp.language()))
    return _parser


def child(node: Any, kind: str) -> Any:
    """The first child of `node` of type `kind`, or None."""
    for found in node.children:
        if found.type == kind:
            return found
    return None


def text(node: Any, source: bytes) -> str:
    """A node's text in the original source (a repaired parse keeps the byte offsets)."""
    return source[node.start_byte:node.end_byte].decode("utf-8", errors="replace")


def position(node_or_byte: Any, source: bytes) -> tuple[int, int]:
    """1-based line and column (in characters) of a node or a byte offset."""
    offset = node_or_byte if isinstance(node_or_byte, int) else node_or_byte.start_byte
    line_start = source.rfind(b"\n", 0, offset) + 1
    column = len(source[line_start:offset].decode("utf-8", errors="replace")) + 1
    return source.count(b"\n", 0, offset) + 1, column


def error_nodes(node: Any) -> list[Any]:
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


def walk(node: Any) -> Iterator[Any]:
    """Every node under `node` (itself included), in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


class LiteralError(ValueError):
    """A literal PowerShell refuses: what is wrong, and where (a character index in it)."""

    def __init__(self, message: str, index: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


def read_at(node: Any, source: bytes, read: Callable[[str], Any]) -> Any:
    """`read(node's text)`, a LiteralError in it made a ScriptError at its line and column."""
    raw = text(node, source)
    try:
        return read(raw)
    except LiteralError as exc:
        line, column = position(node.start_byte + len(raw[:exc.index].encode("utf-8")), source)
        raise ScriptError(f"PowerShell syntax error: {exc.message}", line, column) from None
