"""The OpenAPI document at /api/openapi.json: flask-smorest builds it from the views' declared
shapes; this module gives it sma's error shape and the one route it cannot see (/metrics,
a plain Flask view answering Prometheus text)."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from smacommon.schemas.common import ErrorSchema

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what smaweb.metrics sends


class SmaApi(Api):
    """flask-smorest's Api, answering errors as smaweb.errors makes them."""

    ERROR_SCHEMA = ErrorSchema

    def _register_pagination_header(self) -> None:
        """None: sma's pages carry their cursor in the body, so flask-smorest's X-Pagination
        header (and its PaginationMetadata schema, which no operation uses) stays out."""


def document_metrics(api: Api, app: Flask) -> None:
    """Put GET /metrics (registered by smaweb.metrics) in the document."""
    api.spec.components.security_scheme("metricsToken", {
        "type": "http", "scheme": "bearer",
        "description": "SMA_METRICS_TOKEN; /metrics needs no token when it is not set."})
    api.spec.tag({"name": "metrics", "description": "Prometheus metrics (no API token)."})
    api.spec.path(rule=next(app.url_map.iter_rules("metrics.metrics")), operations={"get": {
        "operationId": "getMetrics",
        "summary": "Job, worker, queue and request metrics in the Prometheus text format.",
        "tags": ["metrics"],
        "security": [{}, {"metricsToken": []}],  # none, or SMA_METRICS_TOKEN when it is set
        "responses": {
            "200": {"description": "OK",
                    "content": {METRICS_CONTENT_TYPE: {"schema": {"type": "string"}}}},
            "401": "UNAUTHORIZED",  # flask-smorest's component, with ErrorSchema
        },
    }})
