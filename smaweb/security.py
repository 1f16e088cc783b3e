"""Security headers on every response: a Content-Security-Policy that lets pages load only
the server's own files (no inline script, no inline style but the one the page's nonce
admits, no framing), no MIME sniffing, no referrer to other sites, and HSTS over HTTPS."""

from __future__ import annotations

import secrets

from flask import Flask, Response, g, request

# htmx's indicator <style> is turned off in base.html; Swagger UI at /api/docs starts from a
# file (templates/swagger_ui.html); CodeMirror's <style> element carries the page's nonce
DIRECTIVES = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)
POLICY = "; ".join(DIRECTIVES)
HEADERS = {
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP 2
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
HSTS = "max-age=31536000"  # a year; not includeSubDomains: sma does not own its neighbours


def csp_nonce() -> str:
    """This response's style nonce (for <meta name="csp-nonce">), made on first use."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def _policy() -> str:
    nonce = g.get("csp_nonce")
    if not nonce:  # API answers, files, pages without the editor's meta
        return POLICY
    return POLICY.replace("style-src 'self'", f"style-src 'self' 'nonce-{nonce}'")


def _add_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", _policy())
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:  # TLS here, or X-Forwarded-Proto from a trusted proxy
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def init_app(app: Flask) -> None:
    """Add the headers to every response the app makes, errors and streams included."""
    app.after_request(_add_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
