"""sma web service: the REST API under /api/v1."""

from smaweb.app import create_app

__all__ = ["create_app"]
