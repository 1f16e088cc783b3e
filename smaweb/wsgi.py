"""WSGI entry point for gunicorn: `gunicorn smaweb.wsgi:app`."""

from smaweb.app import create_app

app = create_app()
