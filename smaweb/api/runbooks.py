"""/api/v1/runbooks: create, change, draft, publish, versions."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from sqlalchemy import select

from smacommon.models import RunbookVersion
from smacommon.schemas.common import DB_INT_MAX, ErrorSchema, PageArgsSchema
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
from smacommon.services import access
from smacommon.services import runbooks as svc
from smacommon.services.requirements import resolve_draft
from smaweb.auth import current_principal
from smaweb.extensions import SmaBlueprint, db
from smaweb.queries import runbook_page

blp = SmaBlueprint("runbooks", __name__, url_prefix="/api/v1/runbooks",
                   description="Runbooks, their drafts and published versions.")


def _content_limit() -> int:
    return current_app.config["SMA_SETTINGS"].max_content_bytes


@blp.route("")
class Runbooks(MethodView):
    @blp.operation_id("listRunbooks")
    @blp.arguments(RunbookQueryArgsSchema, location="query")
    @blp.response(200, RunbookPageSchema)
    def get(self, args):
        """List runbooks, newest first (filter by name, tag, type)."""
        return runbook_page(db.session, args.get("name"), args.get("tag"), args.get("type"),
                            args["limit"], args["cursor"])

    @blp.operation_id("createRunbook")
    @blp.arguments(RunbookCreateSchema)
    @blp.response(201, RunbookSchema)
    def post(self, data):
        """Create a runbook; its content becomes the draft."""
        session = db.session
        access.check_new_runbook(session, data.get("tags"))
        runbook = svc.create_runbook(session, content_limit=_content_limit(), **data)
        session.commit()
        return runbook


@blp.route("/<runbook>")
class RunbookById(MethodView):
    @blp.operation_id("getRunbook")
    @blp.response(200, RunbookSchema)
    def get(self, runbook):
        """Get a runbook by id or name."""
        return svc.get_runbook(db.session, runbook)

    @blp.operation_id("updateRunbook")
    @blp.arguments(RunbookSettingsSchema)
    @blp.response(200, RunbookSchema)
    def patch(self, data, runbook):
        """Change a runbook's description, tags, log settings, timeout, worker group."""
        session = db.session
        item = svc.update_runbook(session, svc.get_runbook(session, runbook), data)
        session.commit()
        return item

    @blp.operation_id("deleteRunbook")
    @blp.response(204)
    def delete(self, runbook):
        """Delete a runbook with its versions and finished jobs."""
        session = db.session
        svc.delete_runbook(session, svc.get_runbook(session, runbook))
        session.commit()


@blp.route("/<runbook>/draft")
class Draft(MethodView):
    @blp.operation_id("getRunbookDraft")
    @blp.response(200, DraftSchema)
    def get(self, runbook):
        """Get the draft content."""
        item = svc.get_runbook(db.session, runbook)
        if item.draft_content is None:
            raise svc.DraftNotFound(f"Runbook {item.name!r} has no draft.")
        return {"content": item.draft_content, "draft_edited_at": item.draft_edited_at}

    @blp.operation_id("updateRunbookDraft")
    @blp.arguments(DraftUpdateSchema)
    @blp.response(200, DraftSchema)
    def put(self, data, runbook):
        """Replace the draft content."""
        session = db.session
        item = svc.set_draft(session, svc.get_runbook(session, runbook), data["content"],
                             _content_limit())
        session.commit()
        return {"content": item.draft_content, "draft_edited_at": item.draft_edited_at}

    @blp.operation_id("deleteRunbookDraft")
    @blp.response(204)
    def delete(self, runbook):
        """Discard the draft; the published version stays."""
        session = db.session
        svc.discard_draft(session, svc.get_runbook(session, runbook))
        session.commit()


UNRESOLVED = ("The package index could not be used to resolve the runbook's requirements "
              "(PEP 723): try again.")


@blp.route("/<runbook>/publish", methods=["POST"])
@blp.operation_id("publishRunbook")
@blp.response(201, VersionSchema)
@blp.alt_response(503, schema=ErrorSchema, description=UNRESOLVED)
def publish(runbook):
    """Publish the draft as the next numbered version; a Python runbook's requirements
    (PEP 723) are resolved and pinned on it, or the publish is refused."""
    session = db.session
    resolved = resolve_draft(session, runbook, current_app.config["SMA_SETTINGS"])
    version = svc.publish_runbook(session, svc.get_runbook(session, runbook),
                                  published_by=current_principal(), resolved=resolved)
    session.commit()
    return version


@blp.route("/<runbook>/versions", methods=["GET"])
@blp.operation_id("listRunbookVersions")
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
@blp.operation_id("getRunbookVersion")
@blp.response(200, VersionSchema)
def version(runbook, number):
    """Get one published version with its content."""
    session = db.session
    return svc.get_version(session, svc.get_runbook(session, runbook), number)
