"""The web portal: server-rendered pages (Jinja, htmx) at `/`, in the same process as the API.

Pages call the same services as the API, with the same role rules; nothing loads from
outside the server (htmx and the editor are bundled under static/vendor by `make assets`).
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("portal", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")


def init_app(app: Flask) -> None:
    from smaweb.portal import (  # noqa: F401
        assets,
        jobs,
        modules,
        oidc,
        pages,
        runbooks,
        schedules,
        session,
        testpane,
        tokens,
        versions,
    )

    session.init_app(app)
    app.register_blueprint(bp)
