"""sma web service: the REST API under /api/v1."""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str):
    # imported on first use: gunicorn's master imports smaweb.gunicorn_conf and
    # smaweb.ggevent, and nothing of the app may be imported before its worker monkey-patches
    if name == "create_app":
        from smaweb.app import create_app

        return create_app
    raise AttributeError(f"module 'smaweb' has no attribute {name!r}")
