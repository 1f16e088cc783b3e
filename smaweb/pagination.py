"""Keyset pagination: a cursor is the (created_at, id) of the last item of a page.

The next page is asked for with a row-value comparison, `(created_at, id) < (:ts, :id)`: a
B-tree index on (created_at, id), or on (filter column, created_at, id), starts its scan at
the cursor, so every page costs what the first does. The equivalent OR of two comparisons
reads the same rows, but PostgreSQL cannot seek with it and walks the index from the start
(tens to hundreds of ms deep in a million rows). SQLite has row values since 3.15."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

from flask_smorest import abort
from sqlalchemy import Select, tuple_


def encode_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), item_id.hex]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, hex_id = json.loads(raw)
        return datetime.fromisoformat(stamp), uuid.UUID(hex_id)
    except (ValueError, TypeError):
        abort(400, message="Invalid cursor: pass the next_cursor of a previous page as it is.",
              errors={"cursor": ["Invalid cursor."]})
        raise  # unreachable: abort raises


def keyset_statement(stmt: Select, created_col, id_col, limit: int, cursor: str | None,
                     newest_first: bool = True) -> Select:
    """`stmt` ordered by (created_at, id), after the cursor, with one row more than a page
    (the one more says whether a next page exists)."""
    if cursor:
        stamp, last_id = decode_cursor(cursor)
        key = tuple_(created_col, id_col)  # the values are bound with the columns' types
        stmt = stmt.where(key < (stamp, last_id) if newest_first else key > (stamp, last_id))
    order = (created_col.desc(), id_col.desc()) if newest_first else (created_col, id_col)
    return stmt.order_by(*order).limit(limit + 1)


def keyset_page(stmt: Select, created_col, id_col, limit: int, cursor: str | None,
                scalars, newest_first: bool = True):
    """Apply the cursor and order to `stmt` (a select of one model, run with `scalars`);
    return (items, next_cursor)."""
    rows = list(scalars(keyset_statement(stmt, created_col, id_col, limit, cursor,
                                         newest_first)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return rows, next_cursor
