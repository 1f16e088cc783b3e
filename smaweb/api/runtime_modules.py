"""/api/v1/runtime/modules: the uploaded PowerShell modules and Bash libraries as the worker
of a running job fetches them, with the job's token: what there is, then each file by its
SHA-256 (a worker caches them by hash; docs/modules.md)."""

from __future__ import annotations

import marshmallow as ma
from sqlalchemy import select

from smacommon.models import Module
from smacommon.schemas.common import ResponseSchema, StrictSchema
from smacommon.schemas.module import TYPE_ERROR
from smacommon.services.modules import ModuleNotFound
from smaweb.api.modules import file_response
from smaweb.extensions import SmaBlueprint, db

blp = SmaBlueprint("runtime_modules", __name__, url_prefix="/api/v1/runtime/modules",
                   description="Uploaded PowerShell modules and Bash libraries, as a running "
                               "job's worker fetches them (job token only).")
WORKER_TYPES = ("powershell", "bash")  # Python modules come through the package index


class RuntimeModuleArgsSchema(StrictSchema):
    type = ma.fields.String(required=True, validate=ma.validate.OneOf(WORKER_TYPES,
                                                                        error=TYPE_ERROR))


class RuntimeModuleSchema(ResponseSchema):
    name = ma.fields.String(dump_only=True)
    version = ma.fields.String(dump_only=True)
    module_type = ma.fields.String(dump_only=True, validate=ma.validate.OneOf(WORKER_TYPES))
    filename = ma.fields.String(dump_only=True)
    size = ma.fields.Integer(dump_only=True)
    sha256 = ma.fields.String(dump_only=True)
    uploaded_at = ma.fields.DateTime(dump_only=True)


class RuntimeModuleListSchema(ResponseSchema):
    items = ma.fields.List(ma.fields.Nested(RuntimeModuleSchema))


@blp.route("", methods=["GET"])
@blp.operation_id("listRuntimeModules")
@blp.arguments(RuntimeModuleArgsSchema, location="query")
@blp.response(200, RuntimeModuleListSchema)
def modules(args):
    """Every uploaded module of a type, oldest first (no content)."""
    rows = db.session.scalars(select(Module).where(Module.module_type == args["type"])
                              .order_by(Module.uploaded_at, Module.id))
    return {"items": list(rows)}


@blp.route("/<sha256>", methods=["GET"])
@blp.operation_id("getRuntimeModuleContent")
@blp.response(200, {"type": "string", "format": "binary"},
              content_type="application/octet-stream")
def content(sha256):
    """An uploaded PowerShell module's or Bash library's file, by its SHA-256."""
    module = db.session.scalar(select(Module).where(
        Module.sha256 == sha256, Module.module_type.in_(WORKER_TYPES)).limit(1))
    if module is None:
        raise ModuleNotFound(f"No PowerShell module or Bash library has the SHA-256 "
                             f"{sha256!r}.")
    return file_response(db.session, module)
