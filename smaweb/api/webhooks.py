"""/api/v1/webhooks: secret URLs that start a runbook; /webhooks/invoke/{token} needs no login."""

from __future__ import annotations

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import abort
from sqlalchemy import select

from smacommon.models import Webhook
from smacommon.schemas.common import ErrorSchema, PageArgsSchema
from smacommon.schemas.schedule import (
    WebhookCreatedSchema,
    WebhookCreateSchema,
    WebhookInvokedSchema,
    WebhookPageSchema,
    WebhookSchema,
    WebhookUpdateSchema,
)
from smacommon.services import access
from smacommon.services import webhooks as svc
from smacommon.services.runbooks import get_runbook
from smaweb.auth import bind_actor
from smaweb.extensions import SmaBlueprint, db
from smaweb.limiter import count_failure
from smaweb.pagination import keyset_page

blp = SmaBlueprint("webhooks", __name__, url_prefix="/api/v1/webhooks",
                   description="Webhooks: start a runbook from any HTTP client.")
INVOKE_PREFIX = "/api/v1/webhooks/invoke/"


@blp.route("")
class Webhooks(MethodView):
    @blp.operation_id("listWebhooks")
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, WebhookPageSchema)
    def get(self, args):
        """List webhooks (never their tokens)."""
        stmt = access.scoped(db.session, select(Webhook), Webhook.runbook_id)
        items, cursor = keyset_page(stmt, Webhook.created_at, Webhook.id,
                                    args["limit"], args["cursor"], db.session.scalars)
        return {"items": items, "next_cursor": cursor}

    @blp.operation_id("createWebhook")
    @blp.arguments(WebhookCreateSchema)
    @blp.response(201, WebhookCreatedSchema)
    def post(self, data):
        """Create a webhook; its URL (with the secret token) is in this answer only."""
        runbook = get_runbook(db.session, data.pop("runbook"))
        hook, token = svc.create_webhook(db.session, runbook=runbook, **data)
        db.session.commit()
        hook.uri = f"{request.url_root.rstrip('/')}{INVOKE_PREFIX}{token}"
        return hook


@blp.route("/<name>")
class WebhookByName(MethodView):
    @blp.operation_id("getWebhook")
    @blp.response(200, WebhookSchema)
    def get(self, name):
        """Get a webhook (never its token)."""
        return svc.get_webhook(db.session, name)

    @blp.operation_id("updateWebhook")
    @blp.arguments(WebhookUpdateSchema)
    @blp.response(200, WebhookSchema)
    def patch(self, data, name):
        """Enable, disable, extend or change a webhook's fixed parameters."""
        hook = svc.update_webhook(db.session, svc.get_webhook(db.session, name), data)
        db.session.commit()
        return hook

    @blp.operation_id("deleteWebhook")
    @blp.response(204)
    def delete(self, name):
        """Delete a webhook: its URL stops working at once."""
        svc.delete_webhook(db.session, svc.get_webhook(db.session, name))
        db.session.commit()


@blp.route("/invoke/<token>")
class WebhookInvoke(MethodView):
    @blp.operation_id("invokeWebhook")
    @blp.response(202, WebhookInvokedSchema)
    @blp.alt_response(404, schema=ErrorSchema,
                      description="Unknown, disabled or expired webhook (no hint which).")
    @blp.alt_response(413, schema=ErrorSchema, description="The body is larger than 512 KiB.")
    @blp.alt_response(429, schema=ErrorSchema,
                      description="Too many calls with wrong tokens from this address.")
    @blp.doc(security=[])
    def post(self, token):
        """Start the webhook's runbook: WEBHOOKDATA = {WebhookName, RequestBody,
        RequestHeader}; answers {"JobIds": [...]}, as Azure Automation does."""
        # the token first: a wrong one costs no body read, a right one is never refused
        hook = svc.find_by_token(db.session, token)
        if hook is None:
            count_failure()
            abort(404, message="Webhook not found.")
        length = request.content_length
        if length is not None and length > svc.MAX_BODY_BYTES:
            _too_large()
        body = request.get_data(cache=False)
        if len(body) > svc.MAX_BODY_BYTES:
            _too_large()
        bind_actor(f"webhook:{hook.id}", "webhook")  # never the token that is in the path
        headers = {k: v for k, v in request.headers.items()}
        job = svc.invoke(db.session, hook, body, headers, heartbeat_seconds=current_app.config[
            "SMA_SETTINGS"].worker_heartbeat_seconds)
        db.session.commit()
        return {"JobIds": [str(job.id)]}


def _too_large() -> None:
    abort(413, message=f"The request body is larger than the webhook limit of "
                       f"{svc.MAX_BODY_BYTES} bytes; pass large data through a variable asset.")
