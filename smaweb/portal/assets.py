"""Asset pages. A secret input never shows a stored value: left empty, the secret is kept."""

from __future__ import annotations

import base64
import json

from flask import redirect, render_template, request, url_for
from sqlalchemy import select

from smacommon.crypto import get_crypto
from smacommon.errors import SmaError
from smacommon.models import Certificate, Connection, ConnectionType, Credential, Variable
from smacommon.services import assets as svc
from smacommon.strictjson import form_value
from smaweb.extensions import db
from smaweb.portal import bp
from smaweb.portal.session import login_required, require, saving

KINDS = {"variables": Variable, "credentials": Credential, "connections": Connection,
         "certificates": Certificate}
TITLES = {"variables": "Variables", "credentials": "Credentials",
          "connections": "Connections", "certificates": "Certificates"}


def _crypto():
    from flask import current_app

    return get_crypto(current_app.config["SMA_SETTINGS"])


@bp.route("/assets/<kind>")
@login_required()
def asset_list(kind: str):
    if kind not in KINDS:
        return render_template("error.html", code=404, message="No such kind of asset."), 404
    model = KINDS[kind]
    items = db.session.scalars(select(model).order_by(model.name).limit(1000)).all()
    types = db.session.scalars(select(ConnectionType).order_by(ConnectionType.name)).all() \
        if kind == "connections" else []
    return render_template("assets.html", kind=kind, title=TITLES[kind], items=items,
                           types=types, kinds=TITLES)


@bp.route("/assets/<kind>/new", methods=["POST"])
@login_required("author")
def asset_create(kind: str):
    form = request.form
    name = form.get("name", "").strip()
    with saving(f"Created {name}."):
        if kind == "variables":
            svc.create_variable(db.session, _crypto(), name=name,
                                value=form_value(form.get("value", "")),
                                is_encrypted="is_encrypted" in form,
                                description=form.get("description", ""))
        elif kind == "credentials":
            if not form.get("password"):
                raise SmaError("A credential needs a password.")
            svc.create_credential(db.session, _crypto(), name=name,
                                  username=form.get("username", ""),
                                  password=form["password"],
                                  description=form.get("description", ""))
        elif kind == "connections":
            ctype = svc.get_asset(db.session, ConnectionType, form.get("connection_type", ""))
            values = {f["name"]: form.get(f"f_{f['name']}", "") for f in ctype.fields
                      if form.get(f"f_{f['name']}", "") != ""}
            svc.create_connection(db.session, _crypto(), name=name,
                                  connection_type=ctype.name, values=values,
                                  description=form.get("description", ""))
        elif kind == "certificates":
            upload = request.files.get("file")
            if upload is None or not upload.filename:
                raise SmaError("Choose a PFX or PEM file to upload.")
            svc.create_certificate(db.session, _crypto(), name=name,
                                   data_base64=base64.b64encode(upload.read()).decode(),
                                   password=form.get("password") or None,
                                   exportable="exportable" in form,
                                   description=form.get("description", ""))
        else:
            raise SmaError("No such kind of asset.")
    return redirect(url_for("portal.asset_list", kind=kind))


@bp.route("/assets/<kind>/<name>", methods=["GET", "POST"])
@login_required()
def asset_edit(kind: str, name: str):
    if kind not in KINDS:
        return render_template("error.html", code=404, message="No such kind of asset."), 404
    item = svc.get_asset(db.session, KINDS[kind], name)
    if request.method == "POST":
        require("author")
        form = request.form
        with saving(f"Saved {name}."):
            if kind == "variables":
                changes = {"description": form.get("description", "")}
                if not item.is_encrypted or form.get("value", "") != "":
                    changes["value"] = form_value(form.get("value", ""))
                svc.update_variable(db.session, _crypto(), item, changes)
            elif kind == "credentials":
                changes = {"username": form.get("username", ""),
                           "description": form.get("description", "")}
                if form.get("password"):  # empty: keep the stored password
                    changes["password"] = form["password"]
                svc.update_credential(db.session, _crypto(), item, changes)
            elif kind == "connections":
                values = {}
                for field in item.connection_type.fields:
                    text = form.get(f"f_{field['name']}", "")
                    if text != "" or not field.get("is_encrypted"):
                        values[field["name"]] = text
                svc.update_connection(db.session, _crypto(), item,
                                      {"values": values,
                                       "description": form.get("description", "")})
        return redirect(url_for("portal.asset_edit", kind=kind, name=name))
    return render_template("asset.html", kind=kind, title=TITLES[kind], item=item,
                           kinds=TITLES, json=json)


@bp.route("/assets/<kind>/<name>/delete", methods=["POST"])
@login_required("author")
def asset_delete(kind: str, name: str):
    with saving(f"Deleted {name}."):
        if kind not in KINDS:
            raise SmaError("No such kind of asset.")
        svc.delete_asset(db.session, KINDS[kind], name)
    return redirect(url_for("portal.asset_list", kind=kind))


@bp.route("/assets/connection-types/new", methods=["POST"])
@login_required("author")
def connection_type_create():
    fields = []
    for line in request.form.get("fields", "").splitlines():
        parts = [p.strip() for p in line.split(":") if p.strip()]
        if parts:
            fields.append({"name": parts[0], "is_encrypted": "encrypted" in parts[1:],
                           "is_optional": "optional" in parts[1:]})
    with saving("Connection type created."):
        if not fields:
            raise SmaError("Give at least one field, a line each: Name[:encrypted]"
                           "[:optional].")
        svc.create_connection_type(db.session, name=request.form.get("name", "").strip(),
                                   fields=fields)
    return redirect(url_for("portal.asset_list", kind="connections"))
