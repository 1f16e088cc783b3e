"""/api/v1/workers: the registered runbook workers."""

from __future__ import annotations

from flask import current_app

from smacommon.schemas.worker import WorkerListSchema, WorkerQueryArgsSchema
from smacommon.services.workers import list_workers
from smaweb.extensions import SmaBlueprint, db

blp = SmaBlueprint("workers", __name__, url_prefix="/api/v1/workers",
                   description="Runbook workers: groups, engines, heartbeat, running jobs.")


@blp.route("", methods=["GET"])
@blp.operation_id("listWorkers")
@blp.arguments(WorkerQueryArgsSchema, location="query")
@blp.response(200, WorkerListSchema)
def workers(args):
    """List workers with their state (online or lost) and the jobs they run."""
    settings = current_app.config["SMA_SETTINGS"]
    items = list_workers(db.session, settings.worker_heartbeat_seconds, args.get("group"),
                         args.get("state"))
    return {"items": items[:args["limit"]], "next_cursor": None}
