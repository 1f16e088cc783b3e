"""Job pages: the list with filters and live rows, and a job with its live output.

A job page renders only the tail of the output (the last TAIL records) and pages backwards
on demand, so a job with a million lines opens as fast as one with ten. New records arrive
by server-sent events from /api/v1/jobs/{id}/events, after the last seq rendered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import flash, g, redirect, render_template, request, url_for
from sqlalchemy import false, select

from smacommon.db import utcnow
from smacommon.errors import SmaError
from smacommon.models import Job, JobStream, Runbook
from smacommon.schemas.common import DB_INT_MAX
from smacommon.services.jobs import get_job, resume_job, status_history, stop_job, suspend_job
from smacommon.states import FINAL_STATUSES, JobStatus, allowed_sources
from smacommon.streams import STREAMS
from smaweb.api.jobs import jobs_statement
from smaweb.extensions import db
from smaweb.pagination import keyset_page
from smaweb.portal import bp
from smaweb.portal.session import login_required, saving

TAIL = 500
PAGE = 50
RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
          "30d": timedelta(days=30)}
LIVE = ("New", "Activating", "Running", "Stopping", "Suspending", "Resuming")


def _names(jobs: list[Job]) -> dict:
    ids = {j.runbook_id for j in jobs}
    if not ids:
        return {}
    return dict(db.session.execute(select(Runbook.id, Runbook.name)
                                   .where(Runbook.id.in_(ids))).all())


@bp.route("/jobs")
@login_required()
def jobs():
    runbook = request.args.get("runbook", "").strip()
    status = [s for s in request.args.getlist("status") if s in {x.value for x in JobStatus}]
    span = request.args.get("range", "")
    rb = db.session.scalar(select(Runbook).where(Runbook.name == runbook)) if runbook else None
    stmt = jobs_statement(rb.id if rb else None, status,
                          since=utcnow() - RANGES[span] if span in RANGES else None)
    if runbook and rb is None:
        stmt = stmt.where(false())  # no such runbook: no jobs
    items, cursor = keyset_page(stmt, Job.created_at, Job.id, PAGE,
                                request.args.get("cursor") or None, db.session.scalars)
    return render_template("jobs.html", jobs=items, names=_names(items), next_cursor=cursor,
                           runbook=runbook, status=status, span=span, ranges=RANGES,
                           statuses=[s.value for s in JobStatus], live=LIVE)


@bp.route("/jobs/rows")
@login_required()
def job_rows():
    """Fresh rows for the jobs that were live when the list was drawn (htmx polling)."""
    ids = request.args.getlist("id")[:PAGE]
    items = []
    for job_id in ids:
        try:
            items.append(get_job(db.session, job_id))
        except SmaError:
            continue
    return render_template("_job_rows.html", jobs=items, names=_names(items), live=LIVE)


def _controls(job: Job) -> dict[str, bool]:
    """Which buttons the job's status allows (the server checks again)."""
    current = JobStatus(job.status)
    return {
        "stop": current in allowed_sources(JobStatus.STOPPING)
        or current in (JobStatus.NEW, JobStatus.SUSPENDED, JobStatus.RESUMING),
        "suspend": current in allowed_sources(JobStatus.SUSPENDING),
        "resume": current == JobStatus.SUSPENDED,
    }


@bp.route("/jobs/<job_id>")
@login_required()
def job(job_id: str):
    item = get_job(db.session, job_id)
    rows = db.session.scalars(select(JobStream).where(JobStream.job_id == item.id)
                              .order_by(JobStream.seq.desc()).limit(TAIL)).all()
    rows = list(reversed(rows))
    runbook = db.session.get(Runbook, item.runbook_id)
    final = item.status in {s.value for s in FINAL_STATUSES}
    return render_template(
        "job.html", job=item, runbook=runbook, records=rows,
        first_seq=rows[0].seq if rows else None, last_seq=rows[-1].seq if rows else 0,
        history=status_history(db.session, item.id), controls=_controls(item),
        streams=STREAMS, final=final)


@bp.route("/jobs/<job_id>/records")
@login_required()
def job_records(job_id: str):
    """The PAGE*4 records before `before` (the "earlier output" button)."""
    item = get_job(db.session, job_id)
    # within what the database's INTEGER holds (a bigger number would overflow there)
    before = max(0, min(request.args.get("before", type=int) or 0, DB_INT_MAX))
    rows = db.session.scalars(select(JobStream).where(
        JobStream.job_id == item.id, JobStream.seq < before)
        .order_by(JobStream.seq.desc()).limit(PAGE * 4)).all()
    rows = list(reversed(rows))
    return render_template("_records.html", job=item, records=rows,
                           first_seq=rows[0].seq if rows else None)


@bp.route("/jobs/<job_id>/<action>", methods=["POST"])
@login_required("operator")
def job_action(job_id: str, action: str):
    item = get_job(db.session, job_id)
    actions = {"stop": stop_job, "suspend": suspend_job, "resume": resume_job}
    if action not in actions:
        flash(f"Unknown action {action}.", "error")
        return redirect(url_for("portal.job", job_id=item.id))
    with saving(f"{action.capitalize()} requested."):
        actions[action](db.session, item, f"user:{g.principal}")
    return redirect(url_for("portal.job", job_id=item.id))


@bp.app_template_filter("duration")
def duration(job: Job) -> str:
    if job.start_time is None:
        return "-"
    end = job.end_time or datetime.now(UTC)
    seconds = (end - job.start_time).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"

