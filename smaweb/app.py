"""The Flask application factory."""

from __future__ import annotations

import logging
from typing import Any

import swagger_ui_bundle
from flask import Blueprint, Flask

from smacommon.settings import Settings, get_settings
from smaweb import (
    auth,
    errors,
    ldapauth,
    livehub,
    oidcauth,
    openapi,
    requestlog,
    security,
    textcheck,
)
from smaweb.extensions import IntConverter, JSONProvider, db

log = logging.getLogger(__name__)

docs_assets = Blueprint("docs_assets", __name__, static_folder=swagger_ui_bundle.swagger_ui_path,
                        static_url_path="/api/docs/assets")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; `config` may carry SMA_SETTINGS (a Settings) and Flask keys."""
    app = Flask(__name__, static_folder=None)  # the portal serves its own static files
    app.json = JSONProvider(app)
    app.url_map.converters["int"] = IntConverter
    config = dict(config or {})
    settings: Settings = config.pop("SMA_SETTINGS", None) or get_settings()
    app.config.update(
        SMA_SETTINGS=settings,
        SECRET_KEY=settings.secret_key or None,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        API_TITLE="sma",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        # Swagger UI's files come from the swagger-ui-bundle package: nothing loads off-site
        OPENAPI_SWAGGER_UI_URL="/api/docs/assets/",
        API_SPEC_OPTIONS={"components": {"securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearerAuth": []}]},
        JSON_SORT_KEYS=False,
    )
    app.config.update(config)

    if not logging.getLogger().handlers:  # under gunicorn; tests and hosts keep their own
        from smacommon import logs

        logs.configure(fmt=settings.log_format)
    if settings.trusted_proxies:
        # behind reverse proxies the client's address and scheme are those the first proxy saw
        # (the limiter, the audit and the request log use them); unset, X-Forwarded-* is ignored
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies,
                                x_proto=settings.trusted_proxies)
    db.init_app(app)
    livehub.init_app(app)
    api = openapi.SmaApi(app)
    errors.init_app(app)
    requestlog.init_app(app)
    auth.init_app(app)
    ldapauth.init_app(app)
    oidcauth.init_app(app)
    textcheck.init_app(app)
    security.init_app(app)

    from smaweb.api import (
        admin,
        audit,
        certificates,
        connections,
        credentials,
        health,
        identity,
        job_output,
        jobs,
        me,
        module_index,
        modules,
        role_bindings,
        runbooks,
        runtime,
        runtime_modules,
        schedules,
        sessions,
        tokens,
        variables,
        webhooks,
        workers,
    )

    for blueprint in (runbooks.blp, jobs.blp, job_output.blp, variables.blp, credentials.blp,
                      connections.types_blp, connections.blp, certificates.blp, runtime.blp,
                      workers.blp, tokens.blp, audit.blp, admin.blp, schedules.blp,
                      webhooks.blp, health.blp, module_index.blp, modules.blp,
                      runtime_modules.blp, identity.blp, sessions.blp, role_bindings.blp,
                      me.blp):
        api.register_blueprint(blueprint)
    from smaweb import metrics

    metrics.init_app(app)
    openapi.document_metrics(api, app)
    app.register_blueprint(docs_assets)
    from smaweb import portal

    portal.init_app(app)
    return app
