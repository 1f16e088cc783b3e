"""Source repair: what the grammar wrongly rejects, patched in a copy that keeps every offset.

tree-sitter-powershell rejects a few things PowerShell accepts: bare words in a list argument
(`Select-Object Name, Id`), a statement on the same line after a `param(...)` block or a
switch clause, PowerShell 7's `??`, `??=` and `? :`, a numeric suffix such as `10MB` or a
binary literal such as `0b101`, loop labels after `break`/`continue`, `using` statements, a
script that is only a `param(...)` block, letters beyond ASCII in names, and workflow-only
syntax (`foreach -parallel -throttlelimit N`, `InlineScript { } -PSComputerName ...`). Each
is patched in the copy, which is parsed again; what still fails to parse is a real error.
"""

from __future__ import annotations

import re
from typing import Any

from smacommon.scripts.powershell.nodes import child, error_nodes, get_parser

_MAX_REPAIR_PASSES = 25

# blocks after which the grammar wants a line break before the next statement
_BLOCKS = {"param_block", "statement_block", "script_block_expression"}
_NUMBER_SUFFIX = re.compile(rb"(?i)(?=.)(?:ul|us|uy|u|l|s|y|d|n)?(?:[kmgtp]b)?")
# `0b101` (the grammar reads `0` then a name `b101`) and a suffix after hex digits (`0xFFy`)
_BINARY_TAIL = re.compile(rb"(?i)b[01]+(?:ul|us|uy|u|l|s|y|d|n)?(?:[kmgtp]b)?")
_HEX_BEFORE = re.compile(rb"(?i)0x[0-9a-f]+$")
# workflows' `foreach -parallel -throttlelimit 5 (...)`: the grammar knows only `-parallel`
THROTTLE = re.compile(rb"(?i)(\bforeach\s+-parallel)(\s+-throttlelimit\s+[0-9]+)")
_WORKFLOW_PARAMETER = re.compile(rb"(?i)PS[A-Za-z]+")
COMMENTS = re.compile(rb"<#.*?#>|#[^\n]*", re.DOTALL)
_USING = re.compile(rb"(?i)^\s*using\s+(namespace|module|assembly)\b")


def prepare(content: str) -> bytes:
    """The bytes to parse: no byte order mark, leading `using` statements blanked out.

    Every blanking is byte for byte, so offsets in the result are offsets in the UTF-8 of
    `content` without its byte order mark."""
    lines = content.removeprefix("\ufeff").encode("utf-8").split(b"\n")
    in_comment = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if in_comment:
            in_comment = b"#>" not in stripped
            continue
        if not stripped or (stripped.startswith(b"#") and not stripped.startswith(b"#>")):
            continue
        if stripped.startswith(b"<#"):
            in_comment = b"#>" not in stripped[2:]
            continue
        if _USING.match(line):
            # `using` must come first in a script; the grammar does not know it
            lines[i] = _blank(line)
            continue
        break
    source = THROTTLE.sub(lambda m: m.group(1) + _blank(m.group(2)), b"\n".join(lines))
    # the grammar wants a line end after the last statement (e.g. after a lone `param(...)`)
    return source + b"\n"


def is_blank(source: bytes) -> bool:
    """Nothing but white space and comments (the grammar wants at least one statement)."""
    return not COMMENTS.sub(b"", source).strip()


def parse(source: bytes) -> Any:
    """The tree of `source`, repaired where it can be; errors left in it are real ones."""
    parser = get_parser()
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
            break
    return tree  # at the original offsets: the patches keep every byte in its place


def _blank(data: bytes) -> bytes:
    return re.sub(rb"[^\r\n]", b" ", data)


def _repair(root: Any, text: bytearray, state: dict[str, bool]) -> bool:
    """Patch, in place and keeping every byte offset, what the grammar wrongly rejects."""
    changed = _repair_word_lists(root, text)
    for error in error_nodes(root):
        if error.is_missing:
            if error.type == ";" and not COMMENTS.sub(b"", bytes(text[error.start_byte:])).strip():
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
        for part in children:
            changed |= _repair_part(part, len(children), text, state)
    return changed


def _repair_part(part: Any, siblings: int, text: bytearray, state: dict[str, bool]) -> bool:
    """Patch one child of an ERROR node, if it is something the grammar wrongly rejects."""
    if part.type in _BLOCKS:
        end = part.end_byte
        rest = bytes(text[end:]).split(b"\n", 1)[0]
        if rest[:1] in (b" ", b"\t") and rest.strip()[:1] not in (b"", b"#", b";"):
            text[end] = ord("\n")
            return True
        return False
    word = bytes(text[part.start_byte:part.end_byte])
    before = bytes(text[max(0, part.start_byte - 64):part.start_byte])
    if part.type == "simple_name" and siblings == 1 and _WORKFLOW_PARAMETER.fullmatch(word) \
            and before.endswith(b"-"):
        # `InlineScript { } -PSComputerName $c`: workflow activities' common parameters,
        # unknown to the grammar; blanked with their arguments to the end of the line
        end = text.find(b"\n", part.end_byte)
        end = len(text) if end == -1 else end
        start = part.start_byte - 1
        text[start:end] = _blank(bytes(text[start:end]))
        return True
    if part.type == "simple_name" and (
            (_NUMBER_SUFFIX.fullmatch(word) and (before[-1:].isdigit() or before.endswith(b".")
                                                 or _HEX_BEFORE.search(before)))
            or (_BINARY_TAIL.fullmatch(word) and before.endswith(b"0")
                and not before[-2:-1].isalnum())):
        # `10MB`, `5l`, `0xFFy`, `0b101`: the number keeps its place, its value is read from
        # the original text (literals.py)
        text[part.start_byte:part.end_byte] = b"0" * (part.end_byte - part.start_byte)
        return True
    if part.is_error and not part.children:
        return _repair_operator(part, text, state) or _repair_letters(part, text)
    if part.type == ":" and state["ternary"]:
        colon = text.find(b":", part.start_byte, part.end_byte)
        if text[colon - 1:colon].isspace() and text[colon + 1:colon + 2].isspace():
            text[colon] = ord("+")
            return True
    return False


def _repair_word_lists(root: Any, text: bytearray) -> bool:
    """`Select-Object Name, Id`: bare words in a list argument become numbers of their length.

    The grammar takes a list argument only of expressions; PowerShell also of bare words.
    """
    changed = False
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "command":
            name = child(node, "command_name")
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


