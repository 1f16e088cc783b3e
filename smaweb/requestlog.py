"""One structured log line per API request: method, path, status, duration, who."""

from __future__ import annotations

import logging
import re
import time

from flask import Flask, g, request

log = logging.getLogger("sma.request")
_WEBHOOK = re.compile(r"(/webhooks/invoke/)[^/?]+")


def _start() -> None:
    g.sma_t0 = time.perf_counter()


def _done(response):
    began = g.get("sma_t0")
    if began is None or request.path.startswith(("/static/", "/api/docs/assets")):
        return response
    log.info("%s %s %s", request.method, _WEBHOOK.sub(r"\1***", request.path),
             response.status_code, extra={
                 "event": "request", "method": request.method,
                 "path": _WEBHOOK.sub(r"\1***", request.path),  # never a webhook's token
                 "endpoint": request.url_rule.rule if request.url_rule else None,
                 "status": response.status_code,
                 "ms": round((time.perf_counter() - began) * 1000, 2),
                 "principal": g.get("principal"), "client": request.remote_addr})
    return response


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_done)
