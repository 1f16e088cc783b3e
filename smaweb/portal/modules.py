"""Module pages: the uploaded modules (list, detail), the upload form and delete. Downloads
go through the API's content route, which the portal's session cookie may read."""

from __future__ import annotations

from functools import wraps

from flask import current_app, flash, g, redirect, render_template, request, url_for

from smacommon.errors import SmaError
from smacommon.models import Module
from smacommon.modulefiles.types import MODULE_TYPES
from smacommon.schemas.module import TYPE_ERROR
from smacommon.services import modules as svc
from smaweb.extensions import db
from smaweb.pagination import keyset_page
from smaweb.portal import bp
from smaweb.portal.session import load_user, login_required, require, saving

PAGE = 25


def _max_bytes() -> int:
    return svc.max_bytes(current_app.config["SMA_SETTINGS"])


def _module_sized_body(view):
    """Let the upload's body be as large as SMA_MODULE_MAX_MB allows (not
    SMA_MAX_REQUEST_BYTES, as other forms); a larger one is refused before it is read."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        request.max_content_length = _max_bytes() + svc.UPLOAD_SLACK
        if (request.content_length or 0) <= request.max_content_length:
            return view(*args, **kwargs)
        # the form (and its CSRF field) cannot be read: only say so, changing nothing
        if not load_user():
            return redirect(url_for("portal.login", next=url_for("portal.modules")))
        require("author")
        flash(svc.too_large(current_app.config["SMA_SETTINGS"]), "error")
        return redirect(url_for("portal.modules"))
    return wrapper


@bp.route("/modules")
@login_required()
def modules():
    q = request.args.get("q", "").strip()
    mtype = request.args.get("type", "")
    items, next_cursor = keyset_page(
        svc.module_query(q, mtype if mtype in MODULE_TYPES else None),
        Module.uploaded_at, Module.id, PAGE, request.args.get("cursor") or None,
        db.session.scalars)
    return render_template("modules.html", modules=items, next_cursor=next_cursor,
                           pinned=svc.pinned_by(db.session, items), q=q, mtype=mtype,
                           types=MODULE_TYPES, max_mb=_max_bytes() // (1024 * 1024))


@bp.route("/modules", methods=["POST"])
@_module_sized_body
@login_required("author")
def module_upload():
    upload = request.files.get("file")
    module_type = request.form.get("type") or None
    with saving() as done:
        if upload is None or not upload.filename:
            raise SmaError("Choose a module file to upload.")
        if module_type is not None and module_type not in MODULE_TYPES:
            raise SmaError(TYPE_ERROR.format(input=module_type,
                                             choices=", ".join(MODULE_TYPES)))
        filename = upload.filename.replace("\\", "/").rsplit("/", 1)[-1]
        limit = _max_bytes()
        module, created = svc.upload_module(
            db.session, filename, upload.stream.read(limit + 1), max_bytes=limit,
            module_type=module_type,
            version=request.form.get("version", "").strip() or None,
            uploaded_by=g.principal)
        done.message = (f"Uploaded {module.name} {module.version}." if created else
                        f"{module.name} {module.version} was uploaded before, as this very "
                        "file: nothing changed.")
    return redirect(url_for("portal.modules"))


@bp.route("/modules/<name>/<version>")
@login_required()
def module(name: str, version: str):
    found = svc.get_module(db.session, name, version)
    return render_template("module.html", module=found,
                           pinned=svc.pinning_runbooks(db.session, found))


@bp.route("/modules/<name>/<version>/delete", methods=["POST"])
@login_required("author")
def module_delete(name: str, version: str):
    with saving() as done:
        found = svc.get_module(db.session, name, version)
        done.message = f"Deleted {found.name} {found.version}."
        svc.delete_module(db.session, found)
    if done.ok or not isinstance(done.error, svc.ModuleInUse):
        return redirect(url_for("portal.modules"))
    return redirect(url_for("portal.module", name=name, version=version))
