"""/api/v1/admin: service-wide maintenance."""

from __future__ import annotations

from flask import current_app

from smacommon.schemas.worker import PurgeResultSchema, PurgeSchema
from smacommon.services.retention import purge_jobs
from smaweb.extensions import SmaBlueprint, db

blp = SmaBlueprint("admin", __name__, url_prefix="/api/v1/admin",
                   description="Maintenance: job retention.")


@blp.route("/purge-jobs", methods=["POST"])
@blp.arguments(PurgeSchema)
@blp.response(200, PurgeResultSchema)
def purge(data):
    """Delete finished jobs (and their records) older than the retention period
    (SMA_JOB_RETENTION_DAYS, or `older_than_days`)."""
    settings = current_app.config["SMA_SETTINGS"]
    days = data["older_than_days"]
    engine = db.session.get_bind()
    db.session.close()  # the purge runs its own short transactions
    result = purge_jobs(engine, settings.job_retention_days if days is None else days)
    db.session.commit()  # the audit event of the purge
    return result
