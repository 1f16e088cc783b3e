"""/api/v1/runbooks: create, change, draft, publish, versions."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from sqlalchemy import select

from smacommon.models import Runbook, RunbookVersion
from smacommon.schemas.common import DB_INT_MAX, PageArgsSchema
from smacommon.schemas.runbook import (
    DraftSchema,
    DraftUpdateSchema,
    RunbookCreateSchema,
    RunbookPageSchema,
    RunbookQueryArgsSchema,
    RunbookSchema,
    RunbookSettingsSchema,
    VersionPageSchema,
    VersionSchema,
)
from smacommon.services import runbooks as svc
from smaweb.auth import current_principal
from smaweb.extensions import SmaBlueprint, db
from smaweb.pagination import encode_cursor, keyset_page

blp = SmaBlueprint("runbooks", __name__, url_prefix="/api/v1/runbooks",
                   description="Runbooks, their drafts and published versions.")


def _content_limit() -> int:
    return current_app.config["SMA_SETTINGS"].max_content_bytes


@blp.route("")
class Runbooks(MethodView):
    @blp.arguments(RunbookQueryArgsSchema, location="query")
    @blp.response(200, RunbookPageSchema)
    def get(self, args):
        """List runbooks, newest first (filter by name, tag, type)."""
        return runbook_page(args.get("name"), args.get("tag"), args.get("type"),
                            args["limit"], args["cursor"])

    @blp.arguments(RunbookCreateSchema)
    @blp.response(201, RunbookSchema)
    def post(self, data):
        """Create a runbook; its content becomes the draft."""
        session = db.session
        runbook = svc.create_runbook(session, content_limit=_content_limit(), **data)
        session.commit()
        return runbook


def runbook_page(name: str | None, tag: str | None, runbook_type: str | None, limit: int,
                 cursor: str | None) -> dict:
    """A page of runbooks, newest first; the API's list and the portal's both use it."""
    stmt = select(Runbook)
    if name:
        stmt = stmt.where(Runbook.name.contains(name, autoescape=True))
    if runbook_type:
        stmt = stmt.where(Runbook.runbook_type == runbook_type)
    if not tag:
        items, cursor = keyset_page(stmt, Runbook.created_at, Runbook.id, limit, cursor,
                                    db.session.scalars)
        return {"items": items, "next_cursor": cursor}
    # tags are few per runbook: filter in Python portably across SQLite and PostgreSQL
    items = []
    while len(items) < limit:
        page, cursor = keyset_page(stmt, Runbook.created_at, Runbook.id, 200, cursor,
                                   db.session.scalars)
        items += [r for r in page if tag in (r.tags or [])]
        if cursor is None:
            break
    if len(items) > limit:
        items = items[:limit]
        cursor = encode_cursor(items[-1].created_at, items[-1].id)
    return {"items": items, "next_cursor": cursor}


@blp.route("/<runbook>")
class RunbookById(MethodView):
    @blp.response(200, RunbookSchema)
    def get(self, runbook):
        """Get a runbook by id or name."""
        return svc.get_runbook(db.session, runbook)

    @blp.arguments(RunbookSettingsSchema)
    @blp.response(200, RunbookSchema)
    def patch(self, data, runbook):
        """Change a runbook's description, tags, log settings, timeout, worker group."""
        session = db.session
        item = svc.update_runbook(session, svc.get_runbook(session, runbook), data)
        session.commit()
        return item

    @blp.response(204)
    def delete(self, runbook):
        """Delete a runbook with its versions and finished jobs."""
        session = db.session
        svc.delete_runbook(session, svc.get_runbook(session, runbook))
        session.commit()


@blp.route("/<runbook>/draft")
class Draft(MethodView):
    @blp.response(200, DraftSchema)
    def get(self, runbook):
        """Get the draft content."""
        item = svc.get_runbook(db.session, runbook)
        if item.draft_content is None:
            raise svc.DraftNotFound(f"Runbook {item.name!r} has no draft; PUT one to edit it.")
        return {"content": item.draft_content, "draft_edited_at": item.draft_edited_at}

    @blp.arguments(DraftUpdateSchema)
    @blp.response(200, DraftSchema)
    def put(self, data, runbook):
        """Replace the draft content."""
        session = db.session
        item = svc.set_draft(session, svc.get_runbook(session, runbook), data["content"],
                             _content_limit())
        session.commit()
        return {"content": item.draft_content, "draft_edited_at": item.draft_edited_at}

    @blp.response(204)
    def delete(self, runbook):
        """Discard the draft; the published version stays."""
        session = db.session
        svc.discard_draft(session, svc.get_runbook(session, runbook))
        session.commit()


@blp.route("/<runbook>/publish", methods=["POST"])
@blp.response(201, VersionSchema)
def publish(runbook):
    """Publish the draft as the next numbered version."""
    session = db.session
    version = svc.publish_runbook(session, svc.get_runbook(session, runbook),
                                  published_by=current_principal())
    session.commit()
    return version


@blp.route("/<runbook>/versions", methods=["GET"])
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, VersionPageSchema)
def versions(args, runbook):
    """List published versions, newest first."""
    session = db.session
    item = svc.get_runbook(session, runbook)
    stmt = select(RunbookVersion).where(RunbookVersion.runbook_id == item.id)
    if args["cursor"]:
        try:
            number = int(args["cursor"])
        except ValueError:
            number = 0
        if not 0 < number <= DB_INT_MAX:  # beyond it, the database would overflow
            raise svc.ValidationFailed("Invalid cursor: pass the next_cursor of a previous page.",
                                       {"cursor": ["Invalid cursor."]})
        stmt = stmt.where(RunbookVersion.number < number)
    rows = list(session.scalars(stmt.order_by(RunbookVersion.number.desc())
                                .limit(args["limit"] + 1)))
    cursor = str(rows[args["limit"] - 1].number) if len(rows) > args["limit"] else None
    return {"items": rows[:args["limit"]], "next_cursor": cursor}


@blp.route("/<runbook>/versions/<int:number>", methods=["GET"])
@blp.response(200, VersionSchema)
def version(runbook, number):
    """Get one published version with its content."""
    session = db.session
    return svc.get_version(session, svc.get_runbook(session, runbook), number)
