"""Sign-in, sign-out, the dashboard and the workers page."""

from __future__ import annotations

from datetime import UTC, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, select

from smacommon.db import utcnow
from smacommon.errors import SmaError
from smacommon.models import Job, Runbook, Worker
from smacommon.services import access
from smacommon.services.workers import is_online
from smacommon.states import JobStatus
from smaweb import ldapauth, oidcauth
from smaweb.extensions import db
from smaweb.limiter import count_failure
from smaweb.portal import bp
from smaweb.portal.session import (
    check_csrf,
    login_required,
    sign_in,
    sign_in_person,
    sign_out,
)

STATUS_ORDER = [s.value for s in JobStatus]
STATUS_COLOURS = {"Completed": "#2e7d32", "Failed": "#c62828", "Stopped": "#6d4c41",
                  "Suspended": "#ef6c00", "Running": "#1565c0", "New": "#546e7a"}


def login_page(tab: str, status: int = 200, **fields):
    """The sign-in page: its tabs (Directory, Token) and the OpenID provider's button."""
    directory = ldapauth.enabled()
    oidc_name = oidcauth.provider_name() if oidcauth.enabled() else None
    return render_template("login.html", directory=directory, tab=tab, oidc_name=oidc_name,
                           **fields), status


@bp.route("/login", methods=["GET", "POST"])
def login():
    directory = ldapauth.enabled()
    tab = request.args.get("with") or ("directory" if directory else "token")
    tab = tab if directory and tab in ("directory", "token") else "token"
    if request.method != "POST":
        return login_page(tab)
    check_csrf()
    if request.form.get("method") == "directory":
        username = request.form.get("username", "")
        try:
            sign_in_person(username, request.form.get("password", ""))
        except SmaError as exc:  # wrong password, locked, no mapped group, directory down
            flash(exc.message, "error")
            return login_page("directory", exc.status_code, username=username[:128])
        return redirect(next_page())
    typed = request.form.get("token", "").strip()
    if sign_in(typed):
        return redirect(next_page())
    count_failure()  # the API's limit on wrong tokens counts the portal's too
    flash("That token is not valid (wrong, expired or revoked).", "error")
    return login_page("token", 401)


def next_page(target: str | None = None) -> str:
    """Where to go after signing in: `next` if it is a page of this site."""
    target = target or request.args.get("next") or url_for("portal.dashboard")
    if urlsplit(target).netloc or not target.startswith("/") or target.startswith("/\\"):
        target = url_for("portal.dashboard")  # only pages of this site
    return target


@bp.route("/logout", methods=["POST"])
def logout():
    check_csrf()
    sign_out()
    return redirect(url_for("portal.login"))


@bp.route("/")
@login_required()
def dashboard():
    since = utcnow() - timedelta(hours=24)
    session = db.session  # limited to a role binding's runbooks: so is each query here
    counts = dict(session.execute(access.scoped(
        session, select(Job.status, func.count()).where(Job.created_at >= since),
        Job.runbook_id).group_by(Job.status)).all())
    bars = [(s, counts.get(s, 0), STATUS_COLOURS.get(s, "#78909c"))
            for s in STATUS_ORDER if counts.get(s)]
    running = session.execute(access.scoped(
        session, select(Job.id, Job.status, Job.start_time, Job.worker, Runbook.name),
        Job.runbook_id).join(Runbook, Runbook.id == Job.runbook_id)
        .where(Job.status.in_(["Activating", "Running", "Stopping", "Suspending"]))
        .order_by(Job.created_at.desc()).limit(20)).all()
    failures = session.execute(access.scoped(
        session, select(Job.id, Job.end_time, Job.exception, Job.status_reason, Runbook.name),
        Job.runbook_id).join(Runbook, Runbook.id == Job.runbook_id)
        .where(Job.status == "Failed", Job.created_at >= since)
        .order_by(Job.created_at.desc()).limit(10)).all()
    online = db.session.scalar(select(func.count()).select_from(Worker).where(
        is_online(current_app.config["SMA_SETTINGS"].worker_heartbeat_seconds)))
    return render_template("dashboard.html", bars=bars, total=sum(counts.values()),
                           running=running, failures=failures, online=online,
                           first_line=first_line)


@bp.route("/workers")
@login_required()
def workers():
    from smacommon.services.workers import list_workers

    now = utcnow()
    items = list_workers(db.session,
                         current_app.config["SMA_SETTINGS"].worker_heartbeat_seconds)
    return render_template("workers.html", workers=items, now=now)


def first_line(*texts: str | None) -> str:
    """The first non-empty line of the first text that has one (an error's headline)."""
    for text in texts:
        for line in (text or "").splitlines():
            if line.strip() and not line.startswith("Traceback"):
                return line.strip()[:300]
    return ""


@bp.app_template_filter("age")
def age(moment) -> str:
    if moment is None:
        return "-"
    seconds = int((utcnow() - moment).total_seconds())
    if seconds < 0:
        return "in " + _span(-seconds)
    return _span(seconds) + " ago"


def _span(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


@bp.app_template_filter("when")
def when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


@bp.app_template_filter("when_in")
def when_in(moment, zone: str | None) -> str:
    """A time as the wall clock of `zone` (a schedule's), which is how its runs are set:
    e.g. 2026-12-01 02:00 Europe/Paris; UTC times as `when` writes them."""
    if moment is None:
        return "-"
    if not zone or zone == "UTC":
        return when(moment)
    try:
        local = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(ZoneInfo(zone))
    except (ValueError, ZoneInfoNotFoundError):
        return when(moment)
    return f"{local:%Y-%m-%d %H:%M} {zone}"


@bp.app_context_processor
def _globals():
    return {"principal": g.get("principal"), "role": g.get("role")}
