"""Bearer-token authentication of every /api/v1 request."""

from __future__ import annotations

import hmac

from flask import Flask, current_app, g, request
from flask_smorest import abort

from smacommon.services.tokens import JOB_ROLE, find_running_job, find_token
from smaweb.extensions import db

RUNTIME_PREFIX = "/api/v1/runtime/"


def _authenticate() -> None:
    if not request.path.startswith("/api/v1"):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        abort(401, message="Missing token: send the header 'Authorization: Bearer <token>'.",
              headers={"WWW-Authenticate": 'Bearer realm="sma"'})
    secret = secret.strip()
    configured = current_app.config["SMA_SETTINGS"].admin_token
    if configured and hmac.compare_digest(secret.encode(), configured.encode()):
        g.principal, g.role = "admin", "admin"
        _check_scope()
        return
    token = find_token(db.session, secret)
    if token is not None:
        g.principal, g.role = f"token:{token.name}", token.role
    else:
        job_id = find_running_job(db.session, secret)
        if job_id is None:
            abort(401, message="Invalid, expired or revoked token.",
                  headers={"WWW-Authenticate": 'Bearer realm="sma", error="invalid_token"'})
        g.principal, g.role, g.job_id = f"job:{job_id}", JOB_ROLE, job_id
    _check_scope()


def _check_scope() -> None:
    runtime = request.path.startswith(RUNTIME_PREFIX)
    if g.role == JOB_ROLE and not runtime:
        abort(403, message="A job token may only read assets and set variables "
                           f"({RUNTIME_PREFIX}...).")
    if g.role != JOB_ROLE and runtime:
        abort(403, message="Secret values are given only to a running job, with its own token "
                           "(SMA_JOB_TOKEN); use the asset endpoints to manage assets.")


def current_principal() -> str:
    """Who is acting, as recorded in started_by and published_by."""
    return g.get("principal", "anonymous")


def init_app(app: Flask) -> None:
    app.before_request(_authenticate)
