"""JSON answers of the hot read paths, written by orjson from plain dicts.

A record dumped by its marshmallow schema costs about 70 µs; a page of 10,000 stream
records spent ten times longer in the schema than in the database. The views of those
paths build the dicts the schema would have dumped (tests/test_history_pages.py holds them
equal for every kind of record) and keep the schema on the view for the OpenAPI document.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Response, current_app


def dumps(payload: Any) -> bytes:
    """`payload` as JSON: datetimes as marshmallow's DateTime writes them (isoformat();
    naive ones are UTC, as sma stores them, and get `+00:00` too), NaN as null as sma's JSON
    provider writes it."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_NAIVE_UTC)
    except orjson.JSONEncodeError:  # an integer past 64 bits, nesting past 254 levels
        return current_app.json.dumps(_isoformat(payload)).encode()


def body_response(body: bytes, status: int = 200, keep: Any = None) -> Response:
    """JSON already written (by dumps) as the response; `keep`, what it was written from,
    is freed once the answer is sent, not before: a page of 10,000 records is some 60,000
    objects, about 3 ms to free, that the client need not wait for."""
    response = current_app.response_class(body, status=status, mimetype="application/json")
    if keep is not None:
        response.call_on_close(lambda: keep)
    return response


def json_response(payload: Any, status: int = 200) -> Response:
    """`payload` as a JSON response, written by dumps (and freed after it is sent)."""
    return body_response(dumps(payload), status, keep=payload)


def _isoformat(value: Any) -> Any:
    """`value` with its datetimes written as orjson writes them (Flask's provider would
    write HTTP dates), naive ones taken as UTC."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, dict):
        return {key: _isoformat(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_isoformat(item) for item in value]
    return value
