"""The list queries the API and the portal share: jobs by filter, runbooks by page."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from smacommon.models import Job, Runbook
from smacommon.services import access
from smaweb.pagination import encode_cursor, keyset_page


def jobs_statement(runbook_id: uuid.UUID | None = None,
                   statuses: Collection[str] | None = None, started_by: str | None = None,
                   is_test: bool | None = None, since: datetime | None = None,
                   until: datetime | None = None) -> Select:
    """The jobs list's filters (the API's and the portal's): every one optional."""
    stmt = select(Job)
    if runbook_id is not None:
        stmt = stmt.where(Job.runbook_id == runbook_id)
    if statuses:
        stmt = stmt.where(Job.status.in_(statuses))
    if started_by:
        stmt = stmt.where(Job.started_by == started_by)
    if is_test is not None:
        stmt = stmt.where(Job.is_test == is_test)
    if since is not None:
        stmt = stmt.where(Job.created_at >= since)
    if until is not None:
        stmt = stmt.where(Job.created_at < until)
    return stmt


def runbook_page(session: Session, name: str | None, tag: str | None,
                 runbook_type: str | None, limit: int, cursor: str | None,
                 where: ColumnElement[bool] | None = None) -> dict:
    """A page of runbooks, newest first; the API's list and the portal's both use it
    (`where`: a further condition, such as the portal's filter by last status)."""
    stmt = select(Runbook) if where is None else select(Runbook).where(where)
    stmt = access.scoped(session, stmt, Runbook.id)  # a role binding's runbooks only
    if name:
        stmt = stmt.where(Runbook.name.contains(name, autoescape=True))
    if runbook_type:
        stmt = stmt.where(Runbook.runbook_type == runbook_type)
    if not tag:
        items, cursor = keyset_page(stmt, Runbook.created_at, Runbook.id, limit, cursor,
                                    session.scalars)
        return {"items": items, "next_cursor": cursor}
    # tags are few per runbook: filter in Python portably across SQLite and PostgreSQL
    items = []
    while len(items) < limit:
        page, cursor = keyset_page(stmt, Runbook.created_at, Runbook.id, 200, cursor,
                                   session.scalars)
        items += [r for r in page if tag in (r.tags or [])]
        if cursor is None:
            break
    if len(items) > limit:
        items = items[:limit]
        cursor = encode_cursor(items[-1].created_at, items[-1].id)
    return {"items": items, "next_cursor": cursor}
