"""Runbook pages: list, detail, the draft editor with diff and publish, the start form."""

from __future__ import annotations

import difflib
import json

from flask import current_app, g, redirect, render_template, request, url_for
from sqlalchemy import select

from smacommon.errors import ValidationFailed
from smacommon.models import Job, JobSchedule, Runbook, RunbookVersion
from smacommon.scripts import RUNBOOK_TYPES
from smacommon.services import runbooks as svc
from smacommon.services.jobs import start_job
from smacommon.strictjson import form_value
from smaweb.api.runbooks import runbook_page
from smaweb.extensions import db
from smaweb.portal import bp
from smaweb.portal.session import login_required, saving

PAGE = 25


def _limit() -> int:
    return current_app.config["SMA_SETTINGS"].max_content_bytes


@bp.route("/runbooks")
@login_required()
def runbooks():
    q = request.args.get("q", "").strip()
    tag = request.args.get("tag", "").strip()
    rtype = request.args.get("type", "")
    page = runbook_page(q, tag, rtype if rtype in RUNBOOK_TYPES else None, PAGE,
                        request.args.get("cursor") or None)
    return render_template("runbooks.html", runbooks=page["items"],
                           next_cursor=page["next_cursor"],
                           q=q, tag=tag, rtype=rtype, types=RUNBOOK_TYPES)


@bp.route("/runbooks/new", methods=["GET", "POST"])
@login_required("author")
def runbook_new():
    form = {"name": "", "runbook_type": "python", "description": "", "tags": "",
            "content": "def main(name: str = 'world'):\n    print(f'hello {name}')\n"}
    if request.method == "POST":
        form.update({k: request.form.get(k, "") for k in form})
        with saving() as done:
            rb = svc.create_runbook(
                db.session, name=form["name"].strip(), runbook_type=form["runbook_type"],
                content=form["content"], content_limit=_limit(),
                description=form["description"],
                tags=[t.strip() for t in form["tags"].split(",") if t.strip()])
            done.message = f"Runbook {rb.name} created as a draft."
        if done.error:
            return render_template("runbook_new.html", form=form, types=RUNBOOK_TYPES), \
                done.error.status_code
        return redirect(url_for("portal.runbook_edit", name=rb.name))
    return render_template("runbook_new.html", form=form, types=RUNBOOK_TYPES)


@bp.route("/runbooks/<name>")
@login_required()
def runbook(name: str):
    return _runbook_page(svc.get_runbook(db.session, name))


def _runbook_page(rb: Runbook, errors: dict | None = None, values: dict | None = None):
    """The runbook's page; after a refused start, with the start form's messages."""
    versions = db.session.scalars(select(RunbookVersion).where(
        RunbookVersion.runbook_id == rb.id).order_by(RunbookVersion.number.desc())
        .limit(10)).all()
    links = db.session.scalars(select(JobSchedule).where(JobSchedule.runbook_id == rb.id)
                               .order_by(JobSchedule.created_at)).all()
    jobs = db.session.scalars(select(Job).where(Job.runbook_id == rb.id)
                              .order_by(Job.created_at.desc()).limit(10)).all()
    declared = rb.published_version.parameters if rb.published_version else []
    return render_template("runbook.html", rb=rb, versions=versions, links=links, jobs=jobs,
                           fields=_fields(declared), errors=errors or {},
                           values=values or {})


def _fields(declared: list[dict]) -> list[dict]:
    """The start form's inputs from the declarations: type, default, mandatory."""
    fields = []
    for d in declared:
        kind = d.get("type", "any")
        html = {"int": "number", "float": "number", "bool": "checkbox"}.get(kind, "text")
        if d.get("secret"):
            html = "password"
        default = d.get("default")
        if isinstance(default, dict | list):
            default = json.dumps(default)
        fields.append({"name": d["name"], "type": kind, "input": html,
                       "step": "any" if kind == "float" else "1",
                       "required": bool(d.get("mandatory")) and "default" not in d,
                       "default": default, "has_default": "default" in d})
    return fields


@bp.route("/runbooks/<name>/start", methods=["POST"])
@login_required("operator")
def runbook_start(name: str):
    rb = svc.get_runbook(db.session, name)
    declared = rb.published_version.parameters if rb.published_version else []
    values, raw = {}, {}
    for field in _fields(declared):
        key = f"p_{field['name']}"
        if field["input"] == "checkbox":
            values[field["name"]] = key in request.form
            continue
        text = request.form.get(key, "")
        if field["input"] != "password":  # a secret is never written back into the page
            raw[field["name"]] = text
        if text == "":
            continue  # the default, or a missing mandatory value the server names
        values[field["name"]] = form_value(text) if field["type"] in (
            "object", "list", "any") else text
    with saving() as done:
        job = start_job(db.session, rb, values, worker_group=request.form.get("group") or None,
                        started_by=f"user:{g.principal}",
                        heartbeat_seconds=current_app.config["SMA_SETTINGS"]
                        .worker_heartbeat_seconds)
    if done.error:
        errors = {}
        if isinstance(done.error, ValidationFailed):
            by_name = (done.error.errors or {}).get("parameters")  # or a list, for them all
            for pname, msgs in (by_name.items() if isinstance(by_name, dict) else ()):
                errors[pname] = "; ".join(msgs) if isinstance(msgs, list) else str(msgs)
        return _runbook_page(rb, errors, raw), done.error.status_code
    return redirect(url_for("portal.job", job_id=job.id))


@bp.route("/runbooks/<name>/edit", methods=["GET", "POST"])
@login_required("author")
def runbook_edit(name: str):
    rb = svc.get_runbook(db.session, name)
    if request.method == "POST":
        content = request.form.get("content", "")
        with saving("Draft saved.") as done:
            svc.set_draft(db.session, rb, content, _limit())
        if done.error:
            return render_template("editor.html", rb=rb, content=content), \
                done.error.status_code
        return redirect(url_for("portal.runbook_edit", name=rb.name))
    content = rb.draft_content
    if content is None:
        content = rb.published_version.content if rb.published_version else ""
    return render_template("editor.html", rb=rb, content=content)


@bp.route("/runbooks/<name>/diff")
@login_required()
def runbook_diff(name: str):
    rb = svc.get_runbook(db.session, name)
    published = rb.published_version.content if rb.published_version else ""
    draft = rb.draft_content if rb.draft_content is not None else published
    lines = list(difflib.unified_diff(published.splitlines(), draft.splitlines(),
                                      "published", "draft", lineterm=""))
    return render_template("diff.html", rb=rb, lines=lines)


@bp.route("/runbooks/<name>/publish", methods=["POST"])
@login_required("author")
def runbook_publish(name: str):
    rb = svc.get_runbook(db.session, name)
    with saving() as done:
        version = svc.publish_runbook(db.session, rb, published_by=g.principal)
        done.message = f"Published version {version.number}."
    return redirect(url_for("portal.runbook" if done.ok else "portal.runbook_edit",
                            name=rb.name))


@bp.route("/runbooks/<name>/discard", methods=["POST"])
@login_required("author")
def runbook_discard(name: str):
    rb = svc.get_runbook(db.session, name)
    with saving("Draft discarded."):
        svc.discard_draft(db.session, rb)
    return redirect(url_for("portal.runbook", name=rb.name))
