"""Strings: the text of a quoted string, with its backtick escapes, as PowerShell 7 reads it.

A bad `` `u{...} `` escape in any double-quoted string makes PowerShell's parser refuse the
whole script, so it is a ScriptError naming its line and column wherever it is.
"""

from __future__ import annotations

from typing import Any

from smacommon.scripts.powershell.nodes import LiteralError, read_at, text, walk

_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t", "v": "\v"}
_HEX_DIGITS = "0123456789abcdefABCDEF"
_DOUBLE_QUOTES = "\"\u201c\u201d\u201e"
_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_EXPANDABLE = ("expandable_string_literal", "expandable_here_string_literal")


def check_strings(root: Any, source: bytes) -> None:
    """Raise ScriptError for the first bad `` `u{...} `` escape in any double-quoted string."""
    if b"`u" not in source:
        return
    for node in walk(root):
        if node.type in _EXPANDABLE:
            read_at(node, source, lambda raw, node=node: _expand(raw, node, source))


def string_value(inner: Any, source: bytes) -> tuple[bool, Any]:
    """(True, text) of a string with no variable inside, else (False, None)."""
    raw = text(inner, source)
    if inner.type == "verbatim_string_characters" and raw[:1] in _SINGLE_QUOTES:
        return _checked(_undouble(raw[1:-1], _SINGLE_QUOTES))
    if inner.type == "verbatim_here_string_characters" and raw.startswith("@'"):
        return _checked(_here_body(raw))
    if inner.type in _EXPANDABLE:
        value = read_at(inner, source, lambda raw: _expand(raw, inner, source))
        return _checked(value) if value is not None else (False, None)
    return False, None


def _checked(value: str) -> tuple[bool, Any]:
    """A surrogate pair written as two escapes is one character; a lone surrogate is no text."""
    try:
        return True, value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        return False, None  # PowerShell holds it, but no JSON or UTF-8 text can


def _undouble(body: str, quotes: str) -> str:
    """Inside quotes, a quote written twice is one (PowerShell takes the curly ones too)."""
    out: list[str] = []
    i = 0
    while i < len(body):
        if body[i] in quotes and i + 1 < len(body) and body[i + 1] in quotes:
            i += 1
        out.append(body[i])
        i += 1
    return "".join(out)


def _here_body(raw: str) -> str:
    body = raw[2:-2]
    body = body.split("\n", 1)[1] if "\n" in body else ""
    return body.removesuffix("\n").removesuffix("\r")


def _expand(raw: str, node: Any, source: bytes) -> str | None:
    """A double-quoted string's text; None when it interpolates (a variable or `$(...)`)."""
    here = raw.startswith('@"')
    start = raw.find("\n") + 1 if here else 1
    end = len(raw) - 2 if here else len(raw) - 1
    holes = [(len(source[node.start_byte:c.start_byte].decode("utf-8", errors="replace")),
              len(source[node.start_byte:c.end_byte].decode("utf-8", errors="replace")))
             for c in node.named_children]
    out: list[str] = []
    interpolates = bool(holes)
    i = start
    while i < end:
        if holes and i >= holes[0][0]:
            i = max(i, holes.pop(0)[1])
            continue
        char = raw[i]
        if char == "`" and i + 1 < end:
            if raw[i + 1] == "u":
                value, i = _unicode_escape(raw, i, end)
                out.append(value)
                continue
            out.append(_ESCAPES.get(raw[i + 1], raw[i + 1]))
            i += 2
            continue
        if not here and char in _DOUBLE_QUOTES and i + 1 < end and raw[i + 1] in _DOUBLE_QUOTES:
            i += 1  # a quote written twice
        elif char == "$" and i + 1 < end and (raw[i + 1].isalnum() or raw[i + 1] in "_{(:?^$"):
            interpolates = True
        out.append(raw[i])
        i += 1
    if interpolates:
        return None
    value = "".join(out)
    return value.removesuffix("\n").removesuffix("\r") if here else value


def _unicode_escape(raw: str, start: int, end: int) -> tuple[str, int]:
    """`` `u{1F600} ``: 1 to 6 hex digits, at most 10FFFF (PowerShell's own rules)."""
    if start + 2 >= end or raw[start + 2] != "{":
        raise LiteralError("bad Unicode escape `u: write `u{XXXX} with 1 to 6 hex digits "
                           "(a literal backtick and u is ``u)", start)
    first = i = start + 3
    while True:
        char = raw[i] if i < end else ""
        if char == "}" and i > first:
            break
        if char == "}":
            raise LiteralError("bad Unicode escape `u{}: write 1 to 6 hex digits between "
                               "the braces", start)
        if not char or char not in _HEX_DIGITS:
            close = raw.find("}", i, min(end, i + 8))
            shown = raw[start:close + 1] if close != -1 else raw[start:min(i + 1, end)]
            if i - first < 6 and char:
                raise LiteralError(f"bad Unicode escape {shown}: {char!r} is not a hex digit", i)
            raise LiteralError(f"bad Unicode escape {shown}: missing its closing '}}'", start)
        if i - first == 6:
            raise LiteralError(f"bad Unicode escape {raw[start:i + 1]}…: more than 6 hex "
                               "digits", i)
        i += 1
    value = int(raw[first:i], 16)
    if value > 0x10FFFF:
        raise LiteralError(f"bad Unicode escape {raw[start:i + 1]}: beyond U+10FFFF, the "
                           "last Unicode character", first)
    return chr(value), i + 1
