"""/api/v1/runtime: what a running job reaches with its own token (SMA_JOB_TOKEN).

The only place secret values leave the service, and only to the job that asks while it
runs; no user token is accepted here.
"""

from __future__ import annotations

import base64
import uuid

from flask import current_app, g
from sqlalchemy import select

from smacommon.errors import JobNotFound, ValidationFailed
from smacommon.models import Certificate, Connection, Credential, Job, JobStream, Variable
from smacommon.schemas.asset import (
    RuntimeCertificateSchema,
    RuntimeConnectionSchema,
    RuntimeCredentialSchema,
    RuntimeVariableSchema,
    RuntimeVariableSetSchema,
)
from smacommon.schemas.identity import IdTokenArgsSchema, IdTokenSchema
from smacommon.schemas.job import (
    JobSchema,
    RuntimeJobKeysSchema,
    RuntimeJobStartSchema,
    RuntimeOutputSchema,
)
from smacommon.services import assets as svc
from smacommon.services.identity import issue_id_token
from smacommon.services.jobs import start_job
from smacommon.services.runbooks import get_runbook
from smacommon.streams import OUTPUT
from smaweb.api._assets import crypto
from smaweb.api.identity import issuer, signing_keys
from smaweb.extensions import SmaBlueprint, db

blp = SmaBlueprint("runtime", __name__, url_prefix="/api/v1/runtime",
                   description="Assets, child jobs and identity tokens as a running job "
                               "reaches them (job token only).")
MAX_CHILD_OUTPUT = 10_000


@blp.route("/variables/<name>", methods=["GET"])
@blp.operation_id("getRuntimeVariable")
@blp.response(200, RuntimeVariableSchema)
def get_variable(name):
    """A variable's value (decrypted) for the running job."""
    var = svc.asset_for_job(db.session, Variable, name, g.job_id)
    return {"name": var.name, "is_encrypted": var.is_encrypted,
            "value": svc.variable_value(crypto(), var)}


@blp.route("/variables/<name>", methods=["PUT"])
@blp.operation_id("setRuntimeVariable")
@blp.arguments(RuntimeVariableSetSchema)
@blp.response(200, RuntimeVariableSchema)
def set_variable(data, name):
    """Set an existing variable's value (kept encrypted if it is)."""
    var = svc.asset_for_job(db.session, Variable, name, g.job_id)
    svc.update_variable(db.session, crypto(), var, {"value": data["value"]})
    db.session.commit()
    return {"name": var.name, "is_encrypted": var.is_encrypted, "value": data["value"]}


@blp.route("/credentials/<name>", methods=["GET"])
@blp.operation_id("getRuntimeCredential")
@blp.response(200, RuntimeCredentialSchema)
def get_credential(name):
    """A credential's user name and password for the running job."""
    cred = svc.asset_for_job(db.session, Credential, name, g.job_id)
    return {"name": cred.name, "username": cred.username,
            "password": crypto().decrypt_str(cred.password_encrypted)}


@blp.route("/connections/<name>", methods=["GET"])
@blp.operation_id("getRuntimeConnection")
@blp.response(200, RuntimeConnectionSchema)
def get_connection(name):
    """A connection's fields, encrypted ones included, for the running job."""
    conn = svc.asset_for_job(db.session, Connection, name, g.job_id)
    return {"name": conn.name, "connection_type": conn.connection_type.name,
            "values": svc.connection_fields(crypto(), conn),
            "encrypted_fields": [f["name"] for f in conn.connection_type.fields
                                 if f["is_encrypted"]]}


@blp.route("/certificates/<name>", methods=["GET"])
@blp.operation_id("getRuntimeCertificate")
@blp.response(200, RuntimeCertificateSchema)
def get_certificate(name):
    """A certificate for the running job: PKCS#12 with its private key (no password) when
    it has one, exportable or not, as Azure gives runbooks; else the certificate (DER)."""
    cert = svc.asset_for_job(db.session, Certificate, name, g.job_id)
    data = svc.certificate_bytes(crypto(), cert)
    return {"name": cert.name, "thumbprint": cert.thumbprint,
            "data": base64.b64encode(data).decode("ascii")}


@blp.route("/job-keys", methods=["GET"])
@blp.operation_id("getRuntimeJobKeys")
@blp.response(200, RuntimeJobKeysSchema)
def get_job_keys():
    """The running job's own keys, for its worker to seal and open the job's secret
    parameters and checkpoint (workers hold no configured key)."""
    return {"keys": crypto().job_keys(uuid.UUID(str(g.job_id)))}


@blp.route("/id-token", methods=["GET"])
@blp.operation_id("getRuntimeIdToken")
@blp.arguments(IdTokenArgsSchema, location="query")
@blp.response(200, IdTokenSchema)
def get_id_token(args):
    """A short-lived identity token of the running job (a JWT signed with RS256), for a cloud
    that trusts this service's OpenID Connect issuer: `sub` is runbook:<name>, `aud` the
    audience asked for."""
    # a GET's session begins read-only (deferred on SQLite); this one writes its audit
    # event, so its read transaction ends here and the next one starts as a writer
    db.session.rollback()
    token, expires_at = issue_id_token(db.session, signing_keys(), g.job_id, args["audience"],
                                       args["lifetime"], issuer())
    db.session.commit()
    return {"value": token, "expires_at": expires_at}


# --- child jobs --------------------------------------------------------------------------

def _parent() -> Job:
    return db.session.get(Job, uuid.UUID(str(g.job_id)))


def _child(job_id: str) -> Job:
    """A job this job started; any other is 404, as if it did not exist."""
    try:
        child = db.session.get(Job, uuid.UUID(job_id))
    except ValueError:
        child = None
    if child is None or str(child.parent_job_id) != str(g.job_id):
        raise JobNotFound(f"Job {job_id} not found among the jobs this job started.")
    child.runbook_name = get_runbook(db.session, str(child.runbook_id)).name
    return child


@blp.route("/jobs", methods=["POST"])
@blp.operation_id("startChildJob")
@blp.arguments(RuntimeJobStartSchema)
@blp.response(201, JobSchema)
def start_child(data):
    """Start a published runbook as a child of this job (started_by job:<this job>)."""
    settings = current_app.config["SMA_SETTINGS"]
    parent = _parent()
    runbook = get_runbook(db.session, data["runbook"])
    if parent.depth + 1 > settings.max_job_depth:
        raise ValidationFailed(
            f"Job depth limit of {settings.max_job_depth} reached: job {parent.id} is "
            f"{parent.depth} starts below the job that began the chain, so it cannot start "
            f"{runbook.name!r}. A runbook that starts itself needs a condition that ends "
            "the recursion (or raise SMA_MAX_JOB_DEPTH).", {"runbook": ["Too deep."]})
    job = start_job(db.session, runbook, data["parameters"], arguments=data["arguments"],
                    worker_group=data.get("worker_group"), started_by=f"job:{parent.id}",
                    parent_job_id=parent.id, depth=parent.depth + 1,
                    parent_waits=data["wait"],
                    heartbeat_seconds=settings.worker_heartbeat_seconds)
    db.session.commit()
    job.runbook_name = runbook.name
    return job


@blp.route("/jobs/<job_id>", methods=["GET"])
@blp.operation_id("getChildJob")
@blp.response(200, JobSchema)
def get_child(job_id):
    """A child job of this job: its status, reason and exception."""
    return _child(job_id)


@blp.route("/jobs/<job_id>/output", methods=["GET"])
@blp.operation_id("getChildJobOutput")
@blp.response(200, RuntimeOutputSchema)
def get_child_output(job_id):
    """A child job's Output records (objects as their JSON value), first 10,000."""
    child = _child(job_id)
    rows = db.session.execute(
        select(JobStream.seq, JobStream.text, JobStream.value)
        .where(JobStream.job_id == child.id, JobStream.stream == OUTPUT)
        .order_by(JobStream.seq).limit(MAX_CHILD_OUTPUT + 1)).all()
    return {"items": [{"seq": r.seq, "text": r.text, "value": r.value}
                      for r in rows[:MAX_CHILD_OUTPUT]],
            "truncated": len(rows) > MAX_CHILD_OUTPUT}
