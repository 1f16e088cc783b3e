"""/api/v1/audit (admin): every change, whichever door it came through."""

from __future__ import annotations

from sqlalchemy import select

from smacommon.models import AuditEvent
from smacommon.schemas.auth import AuditPageSchema, AuditQueryArgsSchema
from smaweb.extensions import SmaBlueprint, db
from smaweb.pagination import keyset_page

blp = SmaBlueprint("audit", __name__, url_prefix="/api/v1/audit",
                   description="Audit events: who changed what, when, from where (admin).")


@blp.route("", methods=["GET"])
@blp.operation_id("listAuditEvents")
@blp.arguments(AuditQueryArgsSchema, location="query")
@blp.response(200, AuditPageSchema)
def audit(args):
    """List audit events, newest first (filter by actor, door, action, target, since)."""
    stmt = select(AuditEvent)
    if args.get("actor"):
        stmt = stmt.where(AuditEvent.actor == args["actor"])
    if args.get("door"):
        stmt = stmt.where(AuditEvent.door == args["door"])
    if args.get("action"):
        stmt = stmt.where(AuditEvent.action.startswith(args["action"], autoescape=True))
    if args.get("target"):
        stmt = stmt.where(AuditEvent.target.startswith(args["target"], autoescape=True))
    if args.get("since"):
        stmt = stmt.where(AuditEvent.time >= args["since"])
    items, cursor = keyset_page(stmt, AuditEvent.time, AuditEvent.id, args["limit"],
                                args["cursor"], db.session.scalars)
    return {"items": items, "next_cursor": cursor}
