"""/api/v1/runtime: what a running job reaches with its own token (SMA_JOB_TOKEN).

The only place secret values leave the service, and only to the job that asks while it
runs; no user token is accepted here.
"""

from __future__ import annotations

import base64

from smacommon.models import Certificate, Connection, Credential, Variable
from smacommon.schemas.asset import (
    RuntimeCertificateSchema,
    RuntimeConnectionSchema,
    RuntimeCredentialSchema,
    RuntimeVariableSchema,
    RuntimeVariableSetSchema,
)
from smacommon.services import assets as svc
from smaweb.api._assets import crypto
from smaweb.extensions import SmaBlueprint, db

blp = SmaBlueprint("runtime", __name__, url_prefix="/api/v1/runtime",
                   description="Assets as a running job reads them (job token only).")


@blp.route("/variables/<name>", methods=["GET"])
@blp.response(200, RuntimeVariableSchema)
def get_variable(name):
    """A variable's value (decrypted) for the running job."""
    var = svc.get_asset(db.session, Variable, name)
    return {"name": var.name, "is_encrypted": var.is_encrypted,
            "value": svc.variable_value(crypto(), var)}


@blp.route("/variables/<name>", methods=["PUT"])
@blp.arguments(RuntimeVariableSetSchema)
@blp.response(200, RuntimeVariableSchema)
def set_variable(data, name):
    """Set an existing variable's value (kept encrypted if it is)."""
    var = svc.get_asset(db.session, Variable, name)
    svc.update_variable(db.session, crypto(), var, {"value": data["value"]})
    db.session.commit()
    return {"name": var.name, "is_encrypted": var.is_encrypted, "value": data["value"]}


@blp.route("/credentials/<name>", methods=["GET"])
@blp.response(200, RuntimeCredentialSchema)
def get_credential(name):
    """A credential's user name and password for the running job."""
    cred = svc.get_asset(db.session, Credential, name)
    return {"name": cred.name, "username": cred.username,
            "password": crypto().decrypt_str(cred.password_encrypted)}


@blp.route("/connections/<name>", methods=["GET"])
@blp.response(200, RuntimeConnectionSchema)
def get_connection(name):
    """A connection's fields, encrypted ones included, for the running job."""
    conn = svc.get_asset(db.session, Connection, name)
    return {"name": conn.name, "connection_type": conn.connection_type.name,
            "values": svc.connection_fields(crypto(), conn),
            "encrypted_fields": [f["name"] for f in conn.connection_type.fields
                                 if f["is_encrypted"]]}


@blp.route("/certificates/<name>", methods=["GET"])
@blp.response(200, RuntimeCertificateSchema)
def get_certificate(name):
    """A certificate for the running job: PKCS#12 with its key when exportable, else DER."""
    cert = svc.get_asset(db.session, Certificate, name)
    data = svc.certificate_bytes(crypto(), cert)
    return {"name": cert.name, "thumbprint": cert.thumbprint,
            "data": base64.b64encode(data).decode("ascii")}
