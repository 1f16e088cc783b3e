"""The operations of sma on the database, shared by the web service, the workers and the CLI."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

T = TypeVar("T")


def by_id_or_name(session: Session, model: type[T], ref: str) -> T | None:
    """The row of `model` whose id is `ref` (when it is a UUID), else whose name is `ref`."""
    row = None
    try:
        row = session.get(model, uuid.UUID(str(ref)))
    except ValueError:
        pass
    if row is None:
        row = session.scalar(select(model).where(model.name == ref))
    return row
