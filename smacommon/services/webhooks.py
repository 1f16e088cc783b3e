"""Webhooks: a secret URL that starts a runbook with the request as WEBHOOKDATA.

The token is shown once, at creation; only its SHA-256 is stored, so a database dump
cannot invoke anything. An unknown, disabled or expired token is the same 404.
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smacommon import arguments as positional
from smacommon.db import utcnow
from smacommon.errors import Conflict, NotFound, NotPublished, ValidationFailed
from smacommon.models import Job, Runbook, Webhook
from smacommon.names import check_name
from smacommon.parameters import validate
from smacommon.services import access, fixed_parameters
from smacommon.services.audit import record
from smacommon.services.jobs import start_job
from smacommon.services.tokens import hash_token
from smacommon.workergroups import validate_worker_group

WEBHOOK_PARAMETER = "WEBHOOKDATA"
DEFAULT_LIFETIME = timedelta(days=365)
MAX_BODY_BYTES = 512 * 1024  # as Azure Automation


class WebhookNotFound(NotFound):
    message = "Webhook not found."


def _set_parameters(hook: Webhook, runbook: Runbook, parameters: dict[str, Any] | None,
                    arguments: Any = None) -> None:
    """Check the fixed parameters and positional arguments and store them on `hook` (the
    values of secret parameters sealed; *** for a value it keeps sealed keeps that value)."""
    version = runbook.published_version
    if version is None:
        raise NotPublished(f"Runbook {runbook.name!r} has no published version; publish it "
                           "before making a webhook for it.")
    declared = [d for d in version.parameters if d["name"].upper() != WEBHOOK_PARAMETER]
    given = dict(parameters or {})
    if any(str(k).upper() == WEBHOOK_PARAMETER for k in given):
        raise ValidationFailed(f"{WEBHOOK_PARAMETER} is filled in by each call; leave it out "
                               "of the webhook's parameters.",
                               {"parameters": [f"{WEBHOOK_PARAMETER} is reserved."]})
    args, by_name = positional.bind(runbook.runbook_type, version.content, declared,
                                    arguments, given)
    # mandatory parameters must be fixed here: nobody can give them at invoke time
    values = validate(by_name, fixed_parameters.keep_sealed(hook, given))
    fixed_parameters.store(hook, declared, values)
    hook.arguments = args or None


def create_webhook(session: Session, *, name: str, runbook: Runbook,
                   parameters: dict[str, Any] | None = None, worker_group: str | None = None,
                   enabled: bool = True, expiry_time: datetime | None = None,
                   description: str = "", arguments: Any = None) -> tuple[Webhook, str]:
    """A new webhook and its token (the only time the token exists in clear)."""
    check_name(name)
    if session.scalar(select(func.count()).select_from(Webhook).where(Webhook.name == name)):
        raise Conflict(f"Webhook {name!r} already exists.")
    if worker_group is not None:
        validate_worker_group(worker_group)
    expiry = expiry_time or utcnow() + DEFAULT_LIFETIME
    if expiry <= utcnow():
        raise ValidationFailed("expiry_time must be in the future.",
                               {"expiry_time": ["Must be in the future."]})
    token = secrets.token_urlsafe(32)
    hook = Webhook(id=uuid.uuid4(), name=name, description=description, runbook_id=runbook.id,
                   token_hash=hash_token(token), worker_group=worker_group, enabled=enabled,
                   expiry_time=expiry)
    _set_parameters(hook, runbook, parameters, arguments)
    hook.runbook = runbook
    session.add(hook)
    session.flush()
    record(session, "webhook.create", _target(hook), runbook=runbook.name)
    return hook, token


def _target(hook: Webhook) -> str:
    return f"/api/v1/webhooks/{hook.name}"


def update_webhook(session: Session, hook: Webhook, changes: dict[str, Any]) -> Webhook:
    if changes.get("worker_group") is not None:
        validate_worker_group(changes["worker_group"])
    if "parameters" in changes or "arguments" in changes:  # checked together, as a start
        _set_parameters(hook, hook.runbook, changes.get("parameters", hook.parameters),
                        changes.get("arguments", hook.arguments))
    for key, value in changes.items():
        if key not in ("parameters", "arguments"):
            setattr(hook, key, value)
    record(session, "webhook.update", _target(hook), fields=sorted(changes))
    return hook


def delete_webhook(session: Session, hook: Webhook) -> None:
    """Delete a webhook: its URL stops working at once."""
    session.delete(hook)
    record(session, "webhook.delete", _target(hook))


def get_webhook(session: Session, name: str) -> Webhook:
    hook = session.scalar(select(Webhook).where(Webhook.name == name))
    if hook is None or not access.covers_id(session, hook.runbook_id):  # outside a binding
        raise WebhookNotFound(f"Webhook {name!r} not found.")
    return hook


def find_by_token(session: Session, token: str) -> Webhook | None:
    """The enabled, unexpired webhook of this token, else None (whatever the reason)."""
    hook = session.scalar(select(Webhook).where(Webhook.token_hash == hash_token(token)))
    if hook is None or not hook.enabled or hook.expiry_time <= utcnow():
        return None
    return hook


def invoke(session: Session, hook: Webhook, body: bytes, headers: dict[str, str],
           heartbeat_seconds: float = 15.0) -> Job:
    """Start the webhook's runbook with its fixed parameters and arguments, and WEBHOOKDATA."""
    data = {"WebhookName": hook.name,
            # kept as text: undecodable bytes and NULs (no database stores them) become U+FFFD
            "RequestBody": body.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
            "RequestHeader": headers}
    runbook = hook.runbook
    declared = {d["name"].upper(): d for d in (runbook.published_version.parameters
                                               if runbook.published_version else [])}
    extra: dict[str, Any] = {}
    decl = declared.get(WEBHOOK_PARAMETER)
    if decl is not None:
        as_text = decl.get("type") in ("string", "str")
        extra[decl["name"]] = json.dumps(data) if as_text else data
    elif runbook.runbook_type != "powershell":
        # Python gets it as --WEBHOOKDATA (or as main's keyword, if main takes it); Bash as
        # the variable and argument; PowerShell only through a declared $WebhookData
        extra[WEBHOOK_PARAMETER] = data
    hook.last_invoked_at = utcnow()
    values, sealed = fixed_parameters.job_parameters(hook)
    return start_job(session, runbook, values, worker_group=hook.worker_group,
                     started_by=f"webhook:{hook.id}", extra_parameters=extra,
                     arguments=hook.arguments,
                     heartbeat_seconds=heartbeat_seconds, sealed_names=sealed)
