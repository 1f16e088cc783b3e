"""JSON as sma takes it from outside: bounded depth, finite numbers of a sane length.

Python's json reads `NaN`, `Infinity` and `1e999` (which no other JSON reader takes back),
raises ValueError on an integer of more than 4,300 digits and RecursionError on a document
nested some thousand levels deep. Every door that reads JSON from outside (API bodies, the
portal's forms, a job's record channel) reads it with `loads`, and values stored as JSON are
checked with `check_value`, so whatever sma stores it can write back as valid JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

from smacommon.errors import JsonRefused

# deeper than any real document; far below the interpreter's recursion limit (~1000), which
# the database drivers, marshal (Python runbooks) and every encoder hit on the way back
MAX_DEPTH = 100
MAX_NUMBER_DIGITS = 100  # a 128-bit integer has 39
_INT_LIMIT = 10 ** MAX_NUMBER_DIGITS


def _too_deep() -> JsonRefused:
    return JsonRefused(f"JSON nested deeper than {MAX_DEPTH} levels is refused; "
                       "flatten the value.")


def _too_long() -> JsonRefused:
    return JsonRefused(f"An integer of more than {MAX_NUMBER_DIGITS} digits is refused "
                       "(send it as a string).")


_NOT_FINITE = ("NaN, Infinity and numbers beyond the range of a 64-bit float (such as 1e999) "
               "are not JSON; send a finite number, null or a string.")
_LAX = json.JSONDecoder(strict=False)  # control characters inside strings allowed


def loads(data: str | bytes, *, strict: bool = True) -> Any:
    """Parse JSON text; JsonRefused (a ValueError and a 400) says why sma refuses it."""
    try:
        value = json.loads(data) if strict else _LAX.decode(
            data if isinstance(data, str) else data.decode("utf-8", "replace"))
    except RecursionError:
        raise _too_deep() from None
    except (json.JSONDecodeError, UnicodeDecodeError):  # not JSON: the caller says so
        raise
    except ValueError:  # Python's own cap: an integer of more than 4,300 digits
        raise _too_long() from None
    _walk(value)
    return value


def check_value(value: Any, field: str | None = None) -> None:
    """Refuse a value sma could not store and write back as JSON: nested deeper than
    MAX_DEPTH, a float that is not finite, an integer of more than MAX_NUMBER_DIGITS digits.
    `field` names the input in the message."""
    try:
        _walk(value)
    except JsonRefused as exc:
        if field is None:
            raise
        raise JsonRefused(f"{field}: {exc.message}", {field: [exc.message]}) from None


def form_value(text: str) -> Any:
    """What a form field that takes JSON means: its JSON value, or the text itself when it is
    not JSON. JSON that sma refuses (NaN, nested too deep) is an error, not text."""
    try:
        return loads(text)
    except json.JSONDecodeError:
        return text


def _walk(value: Any) -> None:
    level, depth = [value], 0
    while level:  # level by level, not recursion: the value may be nested deep enough to
        depth += 1  # break it (and this visits each item once, at C-ish speed)
        below = []
        for item in level:
            kind = type(item)
            if kind is dict:
                below += item.values()
            elif kind is list or kind is tuple:
                below += item
            elif kind is float:
                if not math.isfinite(item):
                    raise JsonRefused(_NOT_FINITE)
                continue
            elif kind is int:
                if not -_INT_LIMIT < item < _INT_LIMIT:
                    raise _too_long()
                continue
            else:
                continue
            if depth > MAX_DEPTH:
                raise _too_deep()
        level = [item for item in below if type(item) in _CHECKED]


_CHECKED = frozenset({dict, list, tuple, float, int})


def finite(value: Any) -> Any:
    """`value` with every float that is not finite as None (for rows stored before sma
    refused them), so it still goes out as valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps that writes only valid JSON (never NaN or Infinity)."""
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(finite(value), allow_nan=False, **kwargs)
