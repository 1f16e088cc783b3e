"""/api/v1/modules: upload, list, read, download and delete uploaded modules (Python wheels
and sdists, PowerShell modules, Bash libraries); the package index is module_index.py."""

from __future__ import annotations

import marshmallow as ma
from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import abort
from flask_smorest.fields import Upload
from werkzeug.datastructures import FileStorage

from smacommon.models import Module
from smacommon.modulefiles.types import MODULE_TYPES
from smacommon.schemas.common import ErrorSchema, StrictSchema
from smacommon.schemas.module import (
    TYPE_ERROR,
    ModulePageSchema,
    ModuleQueryArgsSchema,
    ModuleSchema,
)
from smacommon.services import modules as svc
from smaweb.auth import current_principal
from smaweb.extensions import SmaBlueprint, db
from smaweb.pagination import keyset_page

blp = SmaBlueprint("modules", __name__, url_prefix="/api/v1/modules",
                   description="Uploaded modules: Python wheels and sdists, PowerShell "
                               "modules, Bash libraries.")


class FileUpload(Upload):
    """A file part of a multipart/form-data body (a plain text field is not a file)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, FileStorage):
            raise ma.ValidationError("Send the file as a file part of a multipart/form-data "
                                     "body (curl -F file=@NAME).")
        return value


class ModuleUploadSchema(StrictSchema):
    file = FileUpload(required=True, metadata={
        "description": "A Python wheel (.whl) or sdist (.tar.gz, .zip), a PowerShell module "
                       "zipped (.zip, with its .psd1), or a Bash library (.sh); its name and "
                       "version are read from it."})
    type = ma.fields.String(
        validate=ma.validate.OneOf(MODULE_TYPES, error=TYPE_ERROR),
        metadata={"description": "What the file is (default: told by its name; a .zip by "
                                 "its content)."})
    version = ma.fields.String(
        validate=ma.validate.Length(min=1, max=64),
        metadata={"description": "A Bash library's version, when its file has no "
                                 "`# version: X` line."})


def max_bytes() -> int:
    """SMA_MODULE_MAX_MB in bytes."""
    return svc.max_bytes(current_app.config["SMA_SETTINGS"])


@blp.before_request
def _module_sized_body() -> None:
    """An upload may be larger than SMA_MAX_REQUEST_BYTES: up to SMA_MODULE_MAX_MB."""
    if request.method == "POST" and request.endpoint == "modules.Modules":
        request.max_content_length = max_bytes() + svc.UPLOAD_SLACK
        if (request.content_length or 0) > request.max_content_length:
            abort(413, message=svc.too_large(current_app.config["SMA_SETTINGS"]))


@blp.route("")
class Modules(MethodView):
    @blp.operation_id("listModules")
    @blp.arguments(ModuleQueryArgsSchema, location="query")
    @blp.response(200, ModulePageSchema)
    def get(self, args):
        """List uploaded modules, newest first (filter by name, type)."""
        stmt = svc.module_query(args.get("name"), args.get("type"))
        items, cursor = keyset_page(stmt, Module.uploaded_at, Module.id, args["limit"],
                                    args["cursor"], db.session.scalars)
        return {"items": items, "next_cursor": cursor}

    @blp.operation_id("uploadModule")
    @blp.arguments(ModuleUploadSchema, location="form", content_type="multipart/form-data")
    @blp.response(201, ModuleSchema)
    @blp.alt_response(200, schema=ModuleSchema,
                      description="This very file was uploaded before: the module as it is.")
    @blp.alt_response(413, schema=ErrorSchema,
                      description="The file is larger than SMA_MODULE_MAX_MB.")
    def post(self, data):
        """Upload a module: its type, name and version are read from the file. The same
        name and version with other content is a 409."""
        upload: FileStorage = data["file"]
        limit = max_bytes()
        content = upload.stream.read(limit + 1)
        filename = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
        module, created = svc.upload_module(
            db.session, filename, content, max_bytes=limit, module_type=data.get("type"),
            version=data.get("version"), uploaded_by=current_principal())
        db.session.commit()
        return module, 201 if created else 200


@blp.route("/<name>/<version>")
class ModuleByVersion(MethodView):
    @blp.operation_id("getModule")
    @blp.response(200, ModuleSchema)
    def get(self, name, version):
        """Get one version of a module (the name in any spelling PEP 503 makes equal)."""
        return svc.get_module(db.session, name, version)

    @blp.operation_id("deleteModule")
    @blp.response(204)
    def delete(self, name, version):
        """Delete one version of a module; a 409 names the runbooks whose published version
        pins it."""
        session = db.session
        svc.delete_module(session, svc.get_module(session, name, version))
        session.commit()


@blp.route("/<name>/<version>/content", methods=["GET"])
@blp.operation_id("getModuleContent")
@blp.response(200, {"type": "string", "format": "binary"},
              content_type="application/octet-stream")
def content(name, version):
    """Download the module's file as it was uploaded (its SHA-256 in the ETag)."""
    session = db.session
    return file_response(session, svc.get_module(session, name, version))


def file_response(session, module: Module) -> Response:
    """A module's file as a download."""
    return Response(svc.module_content(session, module), mimetype="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{module.filename}"',
                             "ETag": f'"{module.sha256}"'})
