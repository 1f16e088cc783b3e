"""Every error leaves as {code, status, message, errors}: one place maps them to HTTP."""

from __future__ import annotations

import logging

from flask import Flask, has_request_context, request
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES

from smacommon.db import is_transient
from smacommon.errors import SmaError

log = logging.getLogger(__name__)


def _flatten(errors: object, prefix: str = "") -> list[str]:
    if isinstance(errors, dict):
        out: list[str] = []
        for key, value in errors.items():
            if key in ("json", "query", "querystring", "form", "headers", "path_params"):
                out += _flatten(value, prefix)
            else:
                out += _flatten(value, f"{prefix}{key}.")
        return out
    if isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        return [f"{prefix.rstrip('.')}: {' '.join(errors)}" if prefix else " ".join(errors)]
    if isinstance(errors, list):
        return [m for e in errors for m in _flatten(e, prefix)]
    return [f"{prefix.rstrip('.')}: {errors}"]


def error_body(code: int, message: str, errors: object = None) -> dict:
    body = {"code": code, "status": HTTP_STATUS_CODES.get(code, "Error"), "message": message}
    if errors:
        body["errors"] = errors
    return body


def _page(code: int, message: str, headers: dict | None = None):
    """The portal's pages answer errors with a page, the API with JSON."""
    from flask import render_template

    return render_template("error.html", code=code, message=message), code, headers or {}


def _for_portal() -> bool:
    return has_request_context() and not request.path.startswith(("/api/", "/health",
                                                                    "/metrics"))


def handle_http_exception(error: HTTPException):
    if _for_portal() and not isinstance(error, InternalServerError):
        if error.code in (301, 302, 303, 307, 308):
            return error
        data = getattr(error, "data", None) or {}  # flask-smorest's abort(message=...)
        return _page(error.code or 500, data.get("message") or error.description or error.name,
                     data.get("headers"))
    data = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    message = data.get("message")
    if not message and errors:
        message = "Invalid input: " + "; ".join(_flatten(errors))
    if not message:
        message = error.description or error.name
    if isinstance(error, InternalServerError):
        message = "Internal server error; the service logged the details."
    if isinstance(errors, dict) and set(errors) <= {"json", "query", "querystring", "headers",
                                                    "form"}:
        merged: dict = {}
        for value in errors.values():
            if isinstance(value, dict):
                merged.update(value)
        errors = merged or errors
    headers = data.get("headers") or {}
    return error_body(error.code or 500, message, errors), error.code or 500, headers


def handle_sma_error(error: SmaError):
    code = error.status_code
    if code >= 500:
        log.error("service error: %s", error.message)
    if _for_portal():
        return _page(code, error.message)
    return error_body(code, error.message, error.errors), code


_UNAVAILABLE = "The database is unreachable just now; try again in a few seconds."


def handle_unexpected(error: Exception):
    if is_transient(error):  # a restart or failover of the database: say so, and when
        log.warning("database unreachable: %s", str(error).splitlines()[0])
        headers = {"Retry-After": "5"}
        if _for_portal():
            return _page(503, _UNAVAILABLE, headers)
        return error_body(503, _UNAVAILABLE), 503, headers
    log.exception("unhandled error")
    if _for_portal():
        return _page(500, "Something went wrong on the server; it logged the details.")
    return error_body(500, "Internal server error; the service logged the details."), 500


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(SmaError, handle_sma_error)
    app.register_error_handler(Exception, handle_unexpected)
