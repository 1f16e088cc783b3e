"""The editor's Test pane and re-runs: run the draft as a test job with parameters and watch
its output on the edit page; start a job's runbook again with the job's parameters.

The pane's output is the job page's: the records drawn here, then portal.js follows the
test job's events (/api/v1/jobs/{id}/events) as it does on a job page.
"""

from __future__ import annotations

from flask import current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from smacommon.arguments import refusal
from smacommon.crypto import get_crypto
from smacommon.errors import SmaError
from smacommon.models import Job, JobStream, Runbook
from smacommon.services import runbooks as svc
from smacommon.services.jobs import get_job, start_job
from smacommon.services.requirements import resolve_draft
from smacommon.services.reruns import rerun_job
from smacommon.states import FINAL_STATUSES
from smacommon.streams import STREAMS
from smaweb.auth import started_by
from smaweb.extensions import db
from smaweb.portal import bp
from smaweb.portal.jobs import TAIL
from smaweb.portal.runbooks import ARGUMENTS, _arguments, _fields, start_errors, start_values
from smaweb.portal.session import login_required, require, saving


def _test_job(rb: Runbook) -> Job | None:
    """The test job the pane shows: the one named by ?test=, else the runbook's latest."""
    wanted = request.args.get("test")
    if wanted:
        try:
            job = get_job(db.session, wanted)
        except SmaError:
            return None
        return job if job.is_test and job.runbook_id == rb.id else None
    return db.session.scalar(select(Job).where(Job.runbook_id == rb.id, Job.is_test)
                             .order_by(Job.created_at.desc()).limit(1))


def pane(rb: Runbook, content: str, errors: dict | None = None,
         values: dict | None = None) -> dict:
    """What editor.html's Test pane draws: the draft's parameter form and a test job's
    output so far (`content` is the draft shown in the editor)."""
    problem = None
    try:
        declared = svc.draft_parameters(rb, content)
    except SmaError as exc:  # the draft does not parse: the pane says why
        declared, problem = [], exc.message
    job = _test_job(rb)
    rows = []
    if job is not None:
        rows = list(reversed(db.session.scalars(
            select(JobStream).where(JobStream.job_id == job.id)
            .order_by(JobStream.seq.desc()).limit(TAIL)).all()))
    return {"test": {
        "fields": _fields(declared), "problem": problem, "errors": errors or {},
        "given": values or {}, "takes_arguments": problem is None and refusal(
            rb.runbook_type, content) is None,
        "job": job, "records": rows, "last_seq": rows[-1].seq if rows else 0,
        "final": job is not None and job.status in {s.value for s in FINAL_STATUSES},
        "streams": STREAMS}}


@bp.route("/runbooks/<name>/test", methods=["POST"])
@login_required("author")
def runbook_test(name: str):
    """Save the editor's content as the draft (when it changed), then test the draft."""
    rb = svc.get_runbook(db.session, name)
    settings = current_app.config["SMA_SETTINGS"]
    content = request.form.get("content")
    if content is not None and content != rb.draft_content:
        with saving("Draft saved.") as saved:
            svc.set_draft(db.session, rb, content, settings.max_content_bytes)
        if saved.error:
            return render_template("editor.html", rb=rb, content=content,
                                   **pane(rb, content)), saved.error.status_code
    draft = rb.draft_content if rb.draft_content is not None else ""
    try:
        declared = svc.draft_parameters(rb, draft) if draft else []
    except SmaError:
        declared = []  # the draft does not parse: resolve_draft below says so
    raw = {ARGUMENTS: request.form.get("arguments", "")}
    with saving() as done:
        values, raw = start_values(declared)
        resolved = resolve_draft(db.session, rb.name, settings)
        rb = svc.get_runbook(db.session, name)
        job = start_job(db.session, rb, values, worker_group=request.form.get("group") or None,
                        arguments=_arguments(raw[ARGUMENTS]), started_by=started_by(),
                        test=True, draft=resolved,
                        heartbeat_seconds=settings.worker_heartbeat_seconds)
    if done.error:
        rb = svc.get_runbook(db.session, name)
        shown = rb.draft_content if rb.draft_content is not None else draft
        return render_template("editor.html", rb=rb, content=shown,
                               **pane(rb, shown, start_errors(done.error), raw)), \
            done.error.status_code
    return redirect(url_for("portal.runbook_edit", name=rb.name, test=job.id,
                            _anchor="test-pane"))


@bp.route("/jobs/<job_id>/rerun", methods=["POST"])
@login_required("operator")
def job_rerun(job_id: str):
    """Start the job's runbook again with its parameters: the published version, or for a
    test job (author) the current draft; secret values are reused on the server."""
    old = get_job(db.session, job_id)
    settings = current_app.config["SMA_SETTINGS"]
    if old.is_test:
        require("author")
    with saving() as done:
        draft = resolve_draft(db.session, str(old.runbook_id), settings) if old.is_test \
            else None
        old = get_job(db.session, job_id)
        job = rerun_job(db.session, old, get_crypto(settings), started_by=started_by(),
                        heartbeat_seconds=settings.worker_heartbeat_seconds, draft=draft)
        done.message = "Started again with the same parameters."
    if done.error:
        return redirect(url_for("portal.job", job_id=old.id))
    if job.is_test:
        name = db.session.get(Runbook, job.runbook_id).name
        return redirect(url_for("portal.runbook_edit", name=name, test=job.id,
                                _anchor="test-pane"))
    return redirect(url_for("portal.job", job_id=job.id))
