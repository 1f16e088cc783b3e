"""Text that no database can store is refused up front with a 400, never a 500.

PostgreSQL text cannot hold NUL characters, and a lone UTF-16 surrogate (valid in JSON
escapes, not in UTF-8) cannot be encoded at all.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask_smorest import abort


def _bad_text(value: Any, where: str) -> str | None:
    if isinstance(value, str):
        if "\x00" in value:
            return where
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _bad_text(key, where) or _bad_text(item, f"{where}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _bad_text(item, f"{where}[{index}]")
            if found:
                return found
    return None


def _check() -> None:
    if not request.path.startswith("/api/v1"):
        return
    found = (_bad_text(request.view_args or {}, "path")
             or _bad_text(request.args.to_dict(flat=False), "query"))
    if found is None and request.is_json:
        found = _bad_text(request.get_json(silent=True), "body")
    if found:
        field = found.split(".", 1)[-1].split("[")[0] if "." in found else found
        abort(400, message=f"{found}: text cannot contain NUL characters or invalid Unicode "
                           "(lone surrogates).", errors={field: ["Invalid characters."]})


def init_app(app: Flask) -> None:
    app.before_request(_check)
