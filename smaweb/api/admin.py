"""/api/v1/admin: service-wide maintenance."""

from __future__ import annotations

from flask import current_app

from smacommon.schemas.worker import (
    ConfigurationSchema,
    ConfigurationUpdateSchema,
    PurgeResultSchema,
    PurgeSchema,
)
from smacommon.services import configuration as config
from smacommon.services.audit import actor_of
from smacommon.services.retention import purge_jobs
from smaweb.auth import current_principal
from smaweb.extensions import SmaBlueprint, db

blp = SmaBlueprint("admin", __name__, url_prefix="/api/v1/admin",
                   description="Service configuration and maintenance.")


@blp.route("/configuration", methods=["GET"])
@blp.operation_id("getConfiguration")
@blp.response(200, ConfigurationSchema)
def get_configuration():
    """Job retention and the record limit of jobs (Get-SmaAdminConfiguration)."""
    return config.get_configuration(db.session, current_app.config["SMA_SETTINGS"])


@blp.route("/configuration", methods=["PUT", "PATCH"])
@blp.operation_id(put="setConfiguration", patch="updateConfiguration")
@blp.arguments(ConfigurationUpdateSchema)
@blp.response(200, ConfigurationSchema)
def set_configuration(data):
    """Change them (Set-SmaAdminConfiguration); workers use a change within seconds."""
    values = config.set_configuration(db.session, current_app.config["SMA_SETTINGS"], data,
                                      current_principal())
    db.session.commit()
    return values


@blp.route("/purge-jobs", methods=["POST"])
@blp.operation_id("purgeJobs")
@blp.arguments(PurgeSchema)
@blp.response(200, PurgeResultSchema)
def purge(data):
    """Delete finished jobs (and their records) older than the retention period
    (SMA_JOB_RETENTION_DAYS, or `older_than_days`)."""
    settings = current_app.config["SMA_SETTINGS"]
    days = data["older_than_days"]
    engine, actor = db.session.get_bind(), actor_of(db.session)
    db.session.close()  # the purge runs its own short transactions
    if days is None:
        days = config.current(engine, settings)["job_retention_days"]
    return purge_jobs(engine, days, actor)
