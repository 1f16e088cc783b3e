"""Literal values: numbers, `$true`/`$false`/`$null` and strings, as PowerShell 7 reads them.

A parameter's default is kept only when it is a plain literal. A numeric constant PowerShell's
parser refuses (a value its suffix's type cannot hold, such as `300y`) is a ScriptError naming
its line and column, like any other syntax error; strings are read in strings.py.
"""

from __future__ import annotations

import math
import re
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

from smacommon.scripts.powershell.nodes import LiteralError, read_at, text
from smacommon.scripts.powershell.strings import string_value

# what each of PowerShell's integer types holds (and [decimal], whose integers are exact)
DECIMAL_MAX = 2**96 - 1
RANGES: dict[str, tuple[int, int]] = {
    "sbyte": (-2**7, 2**7 - 1), "byte": (0, 2**8 - 1),
    "int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-2**63, 2**63 - 1), "uint64": (0, 2**64 - 1),
    "decimal": (-DECIMAL_MAX, DECIMAL_MAX),
}
_SUFFIX_TYPES = {"y": "sbyte", "uy": "byte", "s": "int16", "us": "uint16", "l": "int64",
                 "ul": "uint64", "d": "decimal"}
_DOUBLE_MAX = int(sys.float_info.max)
_DOUBLE_DIGITS = len(str(_DOUBLE_MAX))  # more digits than this: beyond [double]
_BIGINT_DIGITS = 4000  # Python converts at most 4,300 digits; sma keeps 100 (strictjson)
_MULTIPLIERS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
# the lookaheads keep a hex digit such as `d` or `b` from being read as a suffix
_NUMBER = re.compile(r"""(?ix)
    (?: 0x (?P<hex>[0-9a-f]+) (?![0-9a-f])
      | 0b (?P<bin>[01]+) (?![01])
      | (?P<dec> (?:[0-9]+ (?:\.[0-9]*)? | \.[0-9]+) (?:e[+-]?[0-9]+)? ) )
    (?P<suffix>ul|us|uy|u|l|s|y|d|n)?
    (?P<multiplier>[kmgtp]b)?""")
# single-child wrappers the grammar puts around every expression
_WRAPPERS = {
    "pipeline", "pipeline_chain", "logical_expression", "bitwise_expression",
    "comparison_expression", "additive_expression", "multiplicative_expression",
    "format_expression", "range_expression", "array_literal_expression", "unary_expression",
    "parenthesized_expression",
}


def literal_value(node: Any, source: bytes) -> tuple[bool, Any]:
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
    if node.type in ("integer_literal", "real_literal"):
        value = read_at(node, source, number)
        return (True, sign * value) if value is not None else (False, None)
    if sign != 1:
        return False, None
    if node.type == "variable":
        lowered = text(node, source).lower()
        if lowered in ("$true", "$false"):
            return True, lowered == "$true"
        if lowered == "$null":
            return True, None
        return False, None
    if node.type == "string_literal" and node.named_children:
        return string_value(node.named_children[0], source)
    return False, None


def number(literal: str) -> int | float | None:
    """A numeric literal's value as PowerShell 7 reads it (None: too large for sma to keep).

    LiteralError when PowerShell refuses it: a value its suffix's type cannot hold (`300y`),
    a hex or binary value beyond [long] without a suffix, a decimal one beyond [double].
    """
    match = _NUMBER.fullmatch(literal)
    if match is None:
        raise LiteralError(f"the numeric constant {_short(literal)} is not valid")
    suffix = (match["suffix"] or "").lower()
    multiplier = _MULTIPLIERS[match["multiplier"][0].lower()] if match["multiplier"] else 1
    decimal = match["dec"]
    if decimal is not None and any(c in decimal for c in ".eE"):
        return _real(decimal, suffix, multiplier, literal)
    if match["hex"] is not None:
        value, suffix = _hex(match["hex"], suffix)
    elif match["bin"] is not None:
        value, suffix = _binary(match["bin"], suffix)
    else:
        digits = decimal.lstrip("0") or "0"
        if len(digits) > _DOUBLE_DIGITS and suffix != "n":
            raise _invalid(literal, "beyond the range of [double]")
        if len(digits) > _BIGINT_DIGITS:
            return None  # a [bigint] PowerShell holds, too long for any JSON reader
        value = int(digits)
    return _fit(value * multiplier, suffix, decimal is not None, literal)


def _real(digits: str, suffix: str, multiplier: int, literal: str) -> int | float:
    if suffix == "d":
        try:
            exact = Decimal(digits) * multiplier
        except (InvalidOperation, ValueError, OverflowError):
            raise _invalid(literal, "beyond the range of [decimal]") from None
        if not exact.is_finite() or abs(exact) > DECIMAL_MAX:
            raise _invalid(literal, "beyond the range of [decimal]")
        return float(exact)
    value = float(digits) * multiplier  # beyond [double] it is infinity, as in .NET
    if not suffix:
        return value
    if not math.isfinite(value):
        raise _invalid(literal, "beyond the range of [double]")
    return _fit(round(value), suffix, False, literal)  # round half to even, as Math.Round


def _hex(digits: str, suffix: str) -> tuple[int, str]:
    """A hex literal: with as many digits as its type has, the top bit is the sign."""
    written = "0" + digits  # as PowerShell writes it down before it looks at the length
    if "u" not in suffix:
        width = {"y": 2, "s": 4, "l": 16}.get(suffix, 8 if len(written) < 16 else 16)
        if len(written) == width + 1:
            written = digits
    value = int(written, 16)
    if written == digits and int(digits[0], 16) >= 8:
        value -= 1 << (4 * len(digits))
    if len(written) == 16 and suffix in ("", "u"):
        suffix += "l"  # sixteen digits denote a (u)long, even when the value is small
    return value, suffix


def _binary(digits: str, suffix: str) -> tuple[int, str]:
    """A binary literal: 32, 64, 96 or 128 and more digits starting with 1 are negative."""
    signed = "u" not in suffix and digits[0] == "1" and len(digits) % 8 == 0 \
        and (len(digits) in (32, 64, 96) or len(digits) >= 128)
    value = int(digits, 2) - (1 << len(digits) if signed else 0)
    if len(digits) == 64 and suffix in ("", "u"):
        suffix += "l"
    return value, suffix


def _fit(value: int, suffix: str, decimal: bool, literal: str) -> int | float:
    """`value` in the type the suffix names, or (no suffix) the narrowest that holds it."""
    if suffix == "n":
        return value
    if suffix == "":
        if RANGES["int64"][0] <= value <= RANGES["int64"][1]:
            return value
        if decimal and abs(value) <= DECIMAL_MAX:
            return value
        if decimal and abs(value) <= _DOUBLE_MAX:
            return float(value)
        raise _invalid(literal, "beyond the range of [long]" if not decimal
                       else "beyond the range of [double]")
    if suffix == "u":
        if 0 <= value <= RANGES["uint64"][1]:
            return value
        raise _invalid(literal, f"{value} is beyond the range of [uint] and [ulong] "
                                f"(0 to {RANGES['uint64'][1]})")
    kind = _SUFFIX_TYPES[suffix]
    low, high = RANGES[kind]
    if low <= value <= high:
        return value
    raise _invalid(literal, f"{value} is beyond the range of [{kind}] ({low} to {high})")


def _invalid(literal: str, why: str) -> LiteralError:
    return LiteralError(f"the numeric constant {_short(literal)} is not valid: {why}")


def _short(literal: str, limit: int = 40) -> str:
    return literal if len(literal) <= limit else literal[:limit] + "…"
