"""Asset services: create, change, delete by name; secrets go in encrypted and come out only
to a running job (`runtime_*`)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smacommon.crypto import Crypto
from smacommon.errors import Conflict, NotFound, ValidationFailed
from smacommon.models import (
    Certificate,
    Connection,
    ConnectionType,
    Credential,
    Job,
    JobSchedule,
    Runbook,
    Variable,
    Webhook,
)
from smacommon.names import check_name
from smacommon.services.audit import Actor, record, record_alone
from smacommon.strictjson import check_value

KINDS = {"variable": Variable, "credential": Credential, "connection_type": ConnectionType,
         "connection": Connection, "certificate": Certificate}
_LABEL = {Variable: "Variable", Credential: "Credential", ConnectionType: "Connection type",
          Connection: "Connection", Certificate: "Certificate"}
# as the audit names them: the action's noun, and the collection in the target's path
_AUDIT = {Variable: ("variable", "variables"), Credential: ("credential", "credentials"),
          ConnectionType: ("connection_type", "connection-types"),
          Connection: ("connection", "connections"), Certificate: ("certificate", "certificates")}


class AssetNotFound(NotFound):
    message = "Asset not found."


def get_asset(session: Session, model: type, name: str):
    """An asset by name, or AssetNotFound naming it."""
    item = session.scalar(select(model).where(model.name == name))
    if item is None:
        raise AssetNotFound(f"{_LABEL[model]} {name!r} not found.")
    return item


def asset_for_job(session: Session, model: type, name: str, job_id: Any):
    """The asset a running job asks for; limited to a tag its runbook lacks, it is not
    found, in the same words as an asset that does not exist."""
    item = get_asset(session, model, name)
    if item.runbook_tag is not None:
        tags = session.scalar(select(Runbook.tags).join(Job, Job.runbook_id == Runbook.id)
                              .where(Job.id == uuid.UUID(str(job_id))))
        if item.runbook_tag not in (tags or ()):
            raise AssetNotFound(f"{_LABEL[model]} {name!r} not found.")
    return item


def _new(session: Session, model: type, name: str, **fields: Any):
    check_name(name)
    if session.scalar(select(func.count()).select_from(model).where(model.name == name)):
        raise Conflict(f"{_LABEL[model]} {name!r} already exists.")
    item = model(name=name, **fields)
    session.add(item)
    session.flush()
    _record(session, item, "create")
    return item


def _record(session: Session, item: Any, verb: str, **details: Any) -> None:
    """The audit event of a change to an asset (names of fields only, never a value)."""
    noun, collection = _AUDIT[type(item)]
    record(session, f"{noun}.{verb}", f"/api/v1/{collection}/{item.name}", **details)


def delete_asset(session: Session, model: type, name: str) -> None:
    item = get_asset(session, model, name)
    if model is ConnectionType and session.scalar(
            select(func.count()).select_from(Connection)
            .where(Connection.connection_type_id == item.id)):
        raise Conflict(f"Connection type {name!r} is used by connections; delete them first.")
    session.delete(item)
    _record(session, item, "delete")


# --- variables ---------------------------------------------------------------------------

def _set_variable_value(crypto: Crypto, var: Variable, value: Any) -> None:
    check_value(value, "value")
    if var.is_encrypted:
        var.value, var.value_encrypted = None, crypto.encrypt(json.dumps(value))
    else:
        var.value, var.value_encrypted = value, None


def create_variable(session: Session, crypto: Crypto, *, name: str, value: Any = None,
                    is_encrypted: bool = False, description: str = "",
                    runbook_tag: str | None = None) -> Variable:
    var = _new(session, Variable, name, is_encrypted=is_encrypted, description=description,
               runbook_tag=runbook_tag)
    _set_variable_value(crypto, var, value)
    return var


def update_variable(session: Session, crypto: Crypto, var: Variable,
                    changes: dict[str, Any]) -> Variable:
    if "is_encrypted" in changes and changes["is_encrypted"] != var.is_encrypted:
        if var.is_encrypted and not changes["is_encrypted"]:
            raise ValidationFailed("An encrypted variable cannot be made plain; delete it and "
                                   "create it again.", {"is_encrypted": ["Cannot be unset."]})
        current = variable_value(crypto, var)
        var.is_encrypted = True
        _set_variable_value(crypto, var, changes.get("value", current))
    elif "value" in changes:
        _set_variable_value(crypto, var, changes["value"])
    for key in ("description", "runbook_tag"):
        if key in changes:
            setattr(var, key, changes[key])
    _record(session, var, "update", fields=sorted(changes))
    return var


def variable_value(crypto: Crypto, var: Variable) -> Any:
    if var.is_encrypted:
        return json.loads(crypto.decrypt_str(var.value_encrypted)) if var.value_encrypted else None
    return var.value


# --- credentials -------------------------------------------------------------------------

def create_credential(session: Session, crypto: Crypto, *, name: str, username: str,
                      password: str, description: str = "",
                      runbook_tag: str | None = None) -> Credential:
    return _new(session, Credential, name, username=username, description=description,
                runbook_tag=runbook_tag,
                password_encrypted=crypto.encrypt(password))


def update_credential(session: Session, crypto: Crypto, cred: Credential,
                      changes: dict[str, Any]) -> Credential:
    if "username" in changes:
        cred.username = changes["username"]
    if "password" in changes:
        cred.password_encrypted = crypto.encrypt(changes["password"])
    for key in ("description", "runbook_tag"):
        if key in changes:
            setattr(cred, key, changes[key])
    _record(session, cred, "update", fields=sorted(changes))
    return cred


# --- connection types and connections ----------------------------------------------------

def create_connection_type(session: Session, *, name: str, fields: list[dict[str, Any]],
                           description: str = "") -> ConnectionType:
    seen: set[str] = set()
    clean = []
    for field in fields:
        fname = field["name"]
        if fname in seen:
            raise ValidationFailed(f"Field {fname!r} is declared twice.",
                                   {"fields": [f"{fname} is declared twice."]})
        seen.add(fname)
        clean.append({"name": fname, "is_encrypted": bool(field.get("is_encrypted")),
                      "is_optional": bool(field.get("is_optional"))})
    return _new(session, ConnectionType, name, fields=clean, description=description)


def _split_fields(ctype: ConnectionType, values: dict[str, Any],
                  partial: bool = False) -> tuple[dict, dict]:
    declared = {f["name"]: f for f in ctype.fields}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ValidationFailed(
            f"Unknown field(s) for connection type {ctype.name!r}: {', '.join(unknown)} "
            f"(it has: {', '.join(declared) or 'none'}).", {"values": {k: ["Unknown field."]
                                                                       for k in unknown}})
    if not partial:
        missing = [n for n, f in declared.items() if not f["is_optional"] and n not in values]
        if missing:
            raise ValidationFailed(f"Missing field(s): {', '.join(missing)}.",
                                   {"values": {k: ["Missing field."] for k in missing}})
    check_value(values, "values")
    plain = {k: v for k, v in values.items() if not declared[k]["is_encrypted"]}
    secret = {k: v for k, v in values.items() if declared[k]["is_encrypted"]}
    return plain, secret


def create_connection(session: Session, crypto: Crypto, *, name: str, connection_type: str,
                      values: dict[str, Any], description: str = "",
                      runbook_tag: str | None = None) -> Connection:
    ctype = get_asset(session, ConnectionType, connection_type)
    plain, secret = _split_fields(ctype, values)
    return _new(session, Connection, name, connection_type_id=ctype.id, values=plain,
                values_encrypted=crypto.encrypt(json.dumps(secret)) if secret else None,
                description=description, runbook_tag=runbook_tag)


def update_connection(session: Session, crypto: Crypto, conn: Connection,
                      changes: dict[str, Any]) -> Connection:
    if "values" in changes:
        plain, secret = _split_fields(conn.connection_type, changes["values"], partial=True)
        conn.values = {**(conn.values or {}), **plain}
        if secret:
            current = json.loads(crypto.decrypt_str(conn.values_encrypted)) \
                if conn.values_encrypted else {}
            conn.values_encrypted = crypto.encrypt(json.dumps({**current, **secret}))
    for key in ("description", "runbook_tag"):
        if key in changes:
            setattr(conn, key, changes[key])
    named = {"values": sorted(changes["values"])} if "values" in changes else {}
    _record(session, conn, "update", fields=sorted(changes), **named)
    return conn


def connection_fields(crypto: Crypto, conn: Connection) -> dict[str, Any]:
    secret = json.loads(crypto.decrypt_str(conn.values_encrypted)) if conn.values_encrypted else {}
    return {**(conn.values or {}), **secret}


# --- certificates ------------------------------------------------------------------------

def _load_certificate(data: bytes, password: str | None):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    pw = password.encode() if password else None
    if b"-----BEGIN" in data:
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError:
            raise ValidationFailed("The PEM data holds no valid certificate.",
                                   {"data": ["No certificate in the PEM."]}) from None
        key = None
        if b"PRIVATE KEY-----" in data:
            try:
                key = serialization.load_pem_private_key(data, pw)
            except (ValueError, TypeError):
                raise ValidationFailed("The PEM private key cannot be read: wrong or missing "
                                       "password?", {"password": ["Wrong password."]}) from None
        return key, cert
    try:
        key, cert, _extra = pkcs12.load_key_and_certificates(data, pw)
    except ValueError:
        raise ValidationFailed("The PFX cannot be read: wrong password, or not a PKCS#12 "
                               "file.", {"data": ["Cannot read the PFX."]}) from None
    if cert is None:
        raise ValidationFailed("The PFX holds no certificate.", {"data": ["No certificate."]})
    return key, cert


def create_certificate(session: Session, crypto: Crypto, *, name: str, data_base64: str,
                       password: str | None = None, exportable: bool = False,
                       description: str = "", runbook_tag: str | None = None) -> Certificate:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    check_name(name)  # before the work of reading the certificate
    try:
        data = base64.b64decode(data_base64, validate=True)
    except ValueError:
        raise ValidationFailed("data must be the certificate file (PFX or PEM) in base64.",
                               {"data": ["Not base64."]}) from None
    key, cert = _load_certificate(data, password)
    if key is not None:
        stored = pkcs12.serialize_key_and_certificates(
            name.encode(), key, cert, None, serialization.NoEncryption())
    else:
        stored = cert.public_bytes(serialization.Encoding.DER)
    return _new(session, Certificate, name, description=description, exportable=exportable,
                runbook_tag=runbook_tag,
                thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
                subject=cert.subject.rfc4514_string(),
                not_after=cert.not_valid_after_utc.astimezone(UTC),
                has_private_key=key is not None, data_encrypted=crypto.encrypt(stored))


def certificate_bytes(crypto: Crypto, cert: Certificate) -> bytes:
    """What a running job gets, as Azure Automation gives it to a runbook: a certificate with
    a private key as PKCS#12 with the key and no password, exportable or not (`exportable`
    is about taking the key out of the account, never about runbooks using it); a
    certificate alone as DER."""
    return crypto.decrypt(cert.data_encrypted)


_SECRET_COLUMNS = ((Variable, "value_encrypted"), (Credential, "password_encrypted"),
                   (Connection, "values_encrypted"), (Certificate, "data_encrypted"),
                   # secret fixed parameters (smacommon.services.fixed_parameters)
                   (JobSchedule, "sealed_parameters"), (Webhook, "sealed_parameters"))


def rotate_secrets(engine, crypto: Crypto, actor: Actor) -> int:
    """Re-encrypt every secret under the first key, one table at a time (the sealed fixed
    parameters of schedule links and webhooks, jobs' sealed parameters and checkpoints
    too)."""
    from sqlalchemy import update

    count = 0
    for model, column in _SECRET_COLUMNS:
        table = model.__table__
        with engine.begin() as conn:
            rows = conn.execute(select(table.c.id, table.c[column])
                                .where(table.c[column].is_not(None))).all()
            for row_id, token in rows:
                # not over a value changed meanwhile (sealed under the keys of its writer)
                conn.execute(update(table).where(table.c.id == row_id, table.c[column] == token)
                             .values({column: crypto.rotate(token)}))
                count += 1
    from smacommon.sealing import rotate_sealed

    count += rotate_sealed(engine, crypto)
    record_alone(engine, actor, "keys.rotate", "encryption-keys", secrets=count)
    return count
