"""sma runbook workers: `celery -A smaworker worker`."""

from smaworker.celery_app import app

__all__ = ["app"]
