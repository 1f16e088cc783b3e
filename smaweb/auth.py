"""Bearer-token authentication of every /api/v1 request."""

from __future__ import annotations

import hmac

from flask import Flask, current_app, g, request
from flask_smorest import abort

from smacommon.services.tokens import find_token
from smaweb.extensions import db

PUBLIC_PREFIXES = ("/health", "/api/openapi.json", "/api/docs")


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
        return
    token = find_token(db.session, secret)
    if token is None:
        abort(401, message="Invalid, expired or revoked token.",
              headers={"WWW-Authenticate": 'Bearer realm="sma", error="invalid_token"'})
    g.principal = f"token:{token.name}"
    g.role = token.role


def current_principal() -> str:
    """Who is acting, as recorded in started_by and published_by."""
    return g.get("principal", "anonymous")


def init_app(app: Flask) -> None:
    app.before_request(_authenticate)
