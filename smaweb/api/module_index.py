"""/api/v1/modules/simple/: the uploaded Python modules as a PEP 503 simple index, for pip and
uv (`--index-url http://sma:<token>@host/api/v1/modules/simple/`). An API token or a running
job's token is taken, as a bearer token or as the password of HTTP basic auth."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from flask import Response
from sqlalchemy import select

from smacommon.models import Module
from smacommon.modulefiles.types import normalize
from smacommon.services.modules import ModuleNotFound
from smaweb.api.modules import file_response
from smaweb.extensions import SmaBlueprint, db

blp = SmaBlueprint("module_index", __name__, url_prefix="/api/v1/modules/simple",
                   description="The uploaded Python modules as a PEP 503 simple package "
                               "index (HTML); an API token or a job token, also as the "
                               "password of HTTP basic auth.")
_HTML = "text/html"


def _page(title: str, links: list[tuple[str, str]]) -> Response:
    body = "".join(f'<a href="{escape(href)}">{escape(text)}</a><br>\n' for href, text in links)
    return Response(
        "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.0\">"
        f"<title>{escape(title)}</title></head>\n<body><h1>{escape(title)}</h1>\n{body}"
        "</body></html>\n", mimetype=_HTML)


def _python_modules(project: str) -> list[Module]:
    rows = list(db.session.scalars(select(Module).where(
        Module.module_type == "python", Module.normalized_name == normalize(project))
        .order_by(Module.uploaded_at)))
    if not rows:
        raise ModuleNotFound(f"No Python module named {project!r} was uploaded.")
    return rows


@blp.route("/", methods=["GET"])
@blp.operation_id("getModuleIndex")
@blp.response(200, {"type": "string"}, content_type=_HTML)
def projects():
    """The projects of the index: every uploaded Python module's name."""
    names = db.session.scalars(select(Module.normalized_name).where(
        Module.module_type == "python").distinct().order_by(Module.normalized_name))
    return _page("Simple index", [(f"{quote(n)}/", n) for n in names])


@blp.route("/<project>/", methods=["GET"])
@blp.operation_id("getModuleIndexProject")
@blp.response(200, {"type": "string"}, content_type=_HTML)
def project(project):
    """A project's files, each link ending in #sha256=<its hash>."""
    rows = _python_modules(project)
    return _page(f"Links for {rows[0].normalized_name}",
                 [(f"{quote(m.filename)}#sha256={m.sha256}", m.filename) for m in rows])


@blp.route("/<project>/<filename>", methods=["GET"])
@blp.operation_id("getModuleIndexFile")
@blp.response(200, {"type": "string", "format": "binary"},
              content_type="application/octet-stream")
def file(project, filename):
    """A file the project's page links to."""
    module = next((m for m in _python_modules(project) if m.filename == filename), None)
    if module is None:
        raise ModuleNotFound(f"Module {project!r} has no file {filename!r}.")
    return file_response(db.session, module)
