"""Keyset pagination: a cursor is the (created_at, id) of the last item of a page."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

from flask_smorest import abort
from sqlalchemy import Select, and_, or_


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


def keyset_page(stmt: Select, created_col, id_col, limit: int, cursor: str | None,
                scalars, newest_first: bool = True):
    """Apply the cursor and order to `stmt` (a select of one model, run with `scalars`);
    return (items, next_cursor)."""
    if cursor:
        stamp, last_id = decode_cursor(cursor)
        if newest_first:
            stmt = stmt.where(or_(created_col < stamp,
                                  and_(created_col == stamp, id_col < last_id)))
        else:
            stmt = stmt.where(or_(created_col > stamp,
                                  and_(created_col == stamp, id_col > last_id)))
    order = (created_col.desc(), id_col.desc()) if newest_first else (created_col, id_col)
    rows = list(scalars(stmt.order_by(*order).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return rows, next_cursor
