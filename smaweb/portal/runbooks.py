"""Runbook pages: list, detail, the draft editor with diff and publish, the start form."""

from __future__ import annotations

import difflib
import json

from flask import current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from smacommon.arguments import refusal
from smacommon.errors import SmaError, ValidationFailed
from smacommon.models import Job, JobSchedule, Runbook, RunbookVersion, Worker
from smacommon.scripts import RUNBOOK_TYPES
from smacommon.sealing import SHOWN
from smacommon.services import runbooks as svc
from smacommon.services.job_lookup import name_starters
from smacommon.services.jobs import get_job, start_job
from smacommon.services.requirements import resolve_draft
from smacommon.services.reruns import shown_parameters
from smacommon.services.workers import is_online
from smacommon.states import JobStatus
from smacommon.strictjson import form_value
from smaweb.auth import started_by
from smaweb.extensions import db
from smaweb.portal import bp
from smaweb.portal.lastrun import NEVER, last_runs, last_status_is
from smaweb.portal.session import login_required, saving
from smaweb.queries import runbook_page

PAGE = 25
LAST_STATUSES = (*(s.value for s in JobStatus), NEVER)


def _limit() -> int:
    return current_app.config["SMA_SETTINGS"].max_content_bytes


@bp.route("/runbooks")
@login_required()
def runbooks():
    q = request.args.get("q", "").strip()
    tag = request.args.get("tag", "").strip()
    rtype = request.args.get("type", "")
    last = request.args.get("last", "")
    if last not in LAST_STATUSES:
        last = ""  # an unknown status filters nothing, as an unknown type does
    page = runbook_page(db.session, q, tag, rtype if rtype in RUNBOOK_TYPES else None, PAGE,
                        request.args.get("cursor") or None,
                        last_status_is(last) if last else None)
    return render_template("runbooks.html", runbooks=page["items"],
                           next_cursor=page["next_cursor"],
                           runs=last_runs(db.session, [r.id for r in page["items"]]),
                           q=q, tag=tag, rtype=rtype, types=RUNBOOK_TYPES,
                           last=last, last_statuses=LAST_STATUSES)


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
    rb = svc.get_runbook(db.session, name)
    from_job = request.args.get("from_job")
    return _runbook_page(rb, values=_prefill(rb, from_job) if from_job else None)


def _prefill(rb: Runbook, job_id: str) -> dict:
    """The start form filled in from a job of the runbook: its parameters but the secret
    ones (the flash names them: they are typed again) and its arguments."""
    try:
        job = get_job(db.session, job_id)
    except SmaError as exc:
        flash(exc.message, "error")
        return {}
    if job.runbook_id != rb.id:
        flash(f"Job {job.id} is not a job of {rb.name}: nothing filled in.", "error")
        return {}
    ticks = {d["name"] for d in (rb.published_version.parameters if rb.published_version
                                 else []) if d.get("type") == "bool"}  # checkboxes
    values: dict = {k: v if isinstance(v, str) or k in ticks else json.dumps(v)
                    for k, v in shown_parameters(job).items()}
    values[ARGUMENTS] = "\n".join(job.arguments or [])
    secret = sorted(k for k, v in (job.parameters or {}).items() if v == SHOWN)
    note = f"Filled in from job {str(job.id)[:8]}."
    if secret:
        note += f" Type the secret value of {', '.join(secret)} again: it is never shown."
    flash(note, "ok")
    return values


def _runbook_page(rb: Runbook, errors: dict | None = None, values: dict | None = None):
    """The runbook's page; after a refused start, with the start form's messages."""
    versions = db.session.scalars(select(RunbookVersion).where(
        RunbookVersion.runbook_id == rb.id).order_by(RunbookVersion.number.desc())
        .limit(10)).all()
    links = db.session.scalars(select(JobSchedule).where(JobSchedule.runbook_id == rb.id)
                               .order_by(JobSchedule.created_at)).all()
    jobs = db.session.scalars(select(Job).where(Job.runbook_id == rb.id)
                              .order_by(Job.created_at.desc()).limit(10)).all()
    name_starters(db.session, jobs)
    version = rb.published_version
    declared = version.parameters if version else []
    return render_template("runbook.html", rb=rb, versions=versions, links=links, jobs=jobs,
                           environments=_environment_status(rb),
                           fields=_fields(declared), errors=errors or {},
                           values=values or {}, takes_arguments=bool(
                               version and refusal(rb.runbook_type, version.content) is None))


def _environment_status(rb: Runbook) -> list[dict]:
    """Where the published version's environment is built: for the runbook's worker group
    and every group with a worker online, how many of its online workers have it."""
    requirements = rb.published_version.requirements if rb.published_version else None
    if not requirements or not requirements.get("key"):
        return []
    heartbeat = current_app.config["SMA_SETTINGS"].worker_heartbeat_seconds
    groups: dict[str, dict] = {rb.worker_group: {"group": rb.worker_group, "online": 0,
                                                 "built": 0}}
    for worker in db.session.scalars(select(Worker).where(is_online(heartbeat))):
        entry = groups.setdefault(worker.worker_group,
                                  {"group": worker.worker_group, "online": 0, "built": 0})
        entry["online"] += 1
        entry["built"] += requirements["key"] in (worker.environments or [])
    first = groups.pop(rb.worker_group)
    return [first, *sorted(groups.values(), key=lambda e: e["group"])]


# the start form's key for the positional arguments (no parameter name starts with @)
ARGUMENTS = "@arguments"


def _arguments(text: str) -> list[str] | None:
    """The start form's arguments: one a line, in order (a blank line between them is an
    empty argument; blank lines at the end are dropped); None when there are none."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines or None


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


def start_values(declared: list[dict]) -> tuple[dict, dict]:
    """The posted start form's values by parameter name, and what to write back into the
    form after a refusal (never a secret's value)."""
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
    raw[ARGUMENTS] = request.form.get("arguments", "")
    return values, raw


def start_errors(error: Exception) -> dict[str, str]:
    """A refused start's messages by parameter name (ARGUMENTS for the arguments)."""
    errors = {}
    if isinstance(error, ValidationFailed):
        by_name = (error.errors or {}).get("parameters")  # or a list, for them all
        for pname, msgs in (by_name.items() if isinstance(by_name, dict) else ()):
            errors[pname] = "; ".join(msgs) if isinstance(msgs, list) else str(msgs)
        if (error.errors or {}).get("arguments"):
            errors[ARGUMENTS] = error.message
    return errors


@bp.route("/runbooks/<name>/start", methods=["POST"])
@login_required("operator")
def runbook_start(name: str):
    rb = svc.get_runbook(db.session, name)
    values, raw = start_values(rb.published_version.parameters if rb.published_version else [])
    with saving() as done:
        job = start_job(db.session, rb, values, worker_group=request.form.get("group") or None,
                        arguments=_arguments(raw[ARGUMENTS]), started_by=started_by(),
                        heartbeat_seconds=current_app.config["SMA_SETTINGS"]
                        .worker_heartbeat_seconds)
    if done.error:
        return _runbook_page(rb, start_errors(done.error), raw), done.error.status_code
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
            return _editor_page(rb, content), done.error.status_code
        return redirect(url_for("portal.runbook_edit", name=rb.name))
    content = rb.draft_content
    if content is None:
        content = rb.published_version.content if rb.published_version else ""
    return _editor_page(rb, content)


def _editor_page(rb: Runbook, content: str):
    """The editor with its Test pane."""
    from smaweb.portal.testpane import pane  # it builds on this module's start form

    return render_template("editor.html", rb=rb, content=content, **pane(rb, content))


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
    name = svc.get_runbook(db.session, name).name
    with saving() as done:  # a refusal (syntax, requirements) shows above the editor
        resolved = resolve_draft(db.session, name, current_app.config["SMA_SETTINGS"])
        version = svc.publish_runbook(db.session, svc.get_runbook(db.session, name),
                                      published_by=g.principal, resolved=resolved)
        done.message = f"Published version {version.number}."
    return redirect(url_for("portal.runbook" if done.ok else "portal.runbook_edit",
                            name=name))


@bp.route("/runbooks/<name>/discard", methods=["POST"])
@login_required("author")
def runbook_discard(name: str):
    rb = svc.get_runbook(db.session, name)
    with saving("Draft discarded."):
        svc.discard_draft(db.session, rb)
    return redirect(url_for("portal.runbook", name=rb.name))
