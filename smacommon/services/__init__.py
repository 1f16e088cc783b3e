"""The operations of sma on the database, shared by the web service, the workers and the CLI."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

T = TypeVar("T")
_BY_NAME: dict[type, Select] = {}  # built once per model: every start looks a runbook up


def by_id_or_name(session: Session, model: type[T], ref: str) -> T | None:
    """The row of `model` whose id is `ref` (when it is a UUID), else whose name is `ref`."""
    row = None
    try:
        row = session.get(model, uuid.UUID(str(ref)))
    except ValueError:
        pass
    if row is None:
        stmt = _BY_NAME.get(model)
        if stmt is None:
            stmt = _BY_NAME[model] = select(model).where(model.name == bindparam("ref"))
        row = session.scalar(stmt, {"ref": ref})
    return row
