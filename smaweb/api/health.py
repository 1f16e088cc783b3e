"""/health: liveness, with no token."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    """The web service is up."""
    return {"status": "ok"}
