"""Job pages: the list with filters and live rows, and a job with its live output.

A job page renders only the tail of the output (the last TAIL records) and pages backwards
on demand, so a job with a million lines opens as fast as one with ten. New records arrive
by server-sent events from /api/v1/jobs/{id}/events, after the last seq rendered. A line
("Attempt 2 — resumed on worker w1 from the checkpoint of 12:03:07 UTC after its worker was
lost") separates the records of one attempt (run) of the job from the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import false, select

from smacommon.db import utcnow
from smacommon.errors import SmaError
from smacommon.models import Job, JobAttempt, JobStream, Runbook
from smacommon.schemas.common import DB_INT_MAX
from smacommon.services import access
from smacommon.services.attempts import job_attempts
from smacommon.services.job_lookup import name_starters
from smacommon.services.jobs import get_job, resume_job, status_history, stop_job, suspend_job
from smacommon.states import FINAL_STATUSES, JobStatus, allowed_sources
from smacommon.streams import STREAMS
from smaweb.auth import started_by
from smaweb.extensions import db
from smaweb.pagination import keyset_page
from smaweb.portal import bp
from smaweb.portal.session import login_required, saving
from smaweb.queries import jobs_statement

TAIL = 500
PAGE = 50
RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
          "30d": timedelta(days=30)}
LIVE = ("New", "Activating", "Running", "Stopping", "Suspending", "Resuming")


def _names(jobs: list[Job]) -> dict:
    """Runbook names by id; each job also gets its started_by_name."""
    name_starters(db.session, jobs)
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
    stmt = access.scoped(db.session, stmt, Job.runbook_id)  # a role binding's runbooks only
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


@dataclass(frozen=True)
class Marker:
    """The line drawn before the records of an attempt after the first."""

    attempt: int
    text: str
    marker: bool = True  # what the templates test (a record has no such attribute)


def _attempt_before(job_id, seq: int) -> int:
    """The attempt of the record before `seq` (1 when there is none): the records drawn
    from `seq` on need a marker for each later attempt."""
    attempt = db.session.scalar(select(JobStream.attempt).where(
        JobStream.job_id == job_id, JobStream.seq == seq - 1)) if seq > 1 else None
    return attempt or 1


def _with_markers(rows: list[JobStream], attempts: list[JobAttempt], shown: int,
                  began: int = 0) -> tuple[list, int]:
    """The records with a Marker before the first of each attempt after `shown`, and up to
    attempt `began` after them (it began, and wrote nothing yet); and the last attempt
    marked."""
    texts = {a.attempt: a.summary for a in attempts}
    items: list = []

    def mark(upto: int) -> None:
        items.extend(Marker(n, texts.get(n, f"Attempt {n}")) for n in range(shown + 1, upto + 1))

    for row in rows:
        if row.attempt > shown:
            mark(row.attempt)
            shown = row.attempt
        items.append(row)
    if began > shown:
        mark(began)
        shown = began
    return items, shown


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
    name_starters(db.session, [item])
    rows = db.session.scalars(select(JobStream).where(JobStream.job_id == item.id)
                              .order_by(JobStream.seq.desc()).limit(TAIL)).all()
    rows = list(reversed(rows))
    runbook = db.session.get(Runbook, item.runbook_id)
    final = item.status in {s.value for s in FINAL_STATUSES}
    attempts = job_attempts(db.session, item.id)
    began = max((a.attempt for a in attempts if a.started_at is not None), default=1)
    before = _attempt_before(item.id, rows[0].seq) if rows and item.attempt > 1 else 1
    items, shown = _with_markers(rows, attempts, before, began)
    return render_template(
        "job.html", job=item, runbook=runbook, records=items, attempts=attempts,
        shown_attempt=shown,
        first_seq=rows[0].seq if rows else None, last_seq=rows[-1].seq if rows else 0,
        history=status_history(db.session, item.id), controls=_controls(item),
        streams=STREAMS, final=final)


@bp.route("/jobs/<job_id>/summary")
@login_required()
def job_summary(job_id: str):
    """The job's facts, status history and attempts, drawn again when its status moves."""
    item = get_job(db.session, job_id)
    name_starters(db.session, [item])
    return render_template("_job_summary.html", job=item,
                           attempts=job_attempts(db.session, item.id),
                           history=status_history(db.session, item.id))


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
    items = rows
    if rows and item.attempt > 1:
        items, _ = _with_markers(rows, job_attempts(db.session, item.id),
                                 _attempt_before(item.id, rows[0].seq))
    return render_template("_records.html", job=item, records=items,
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
        actions[action](db.session, item, started_by())
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

