"""Schedule and webhook pages: create, link runbooks, next runs, enable and disable."""

from __future__ import annotations

from datetime import datetime

from flask import redirect, render_template, request, url_for
from sqlalchemy import select

from smacommon.errors import ValidationFailed
from smacommon.models import Runbook, Schedule, Webhook
from smacommon.recurrence import FREQUENCIES, WEEK_DAYS
from smacommon.services import access
from smacommon.services import schedules as svc
from smacommon.services import webhooks as hooks
from smacommon.services.runbooks import get_runbook
from smacommon.strictjson import form_value
from smaweb.extensions import db
from smaweb.portal import bp
from smaweb.portal.session import login_required, require, saving


def _runbook_names() -> list[str]:
    stmt = select(Runbook.name).where(Runbook.published_version_id.is_not(None))
    stmt = access.scoped(db.session, stmt, Runbook.id)  # a role binding's runbooks only
    return list(db.session.scalars(stmt.order_by(Runbook.name).limit(2000)))


def _pairs(text: str) -> dict:
    """Parameters typed as name=value lines (JSON values are typed)."""
    out = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ValidationFailed(f"Parameters go a line each as name=value, not {line!r}.")
        out[name.strip()] = form_value(value.strip())
    return out


def _whole(text: str, field: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValidationFailed(f"{field}: {text!r} is not a whole number.") from None


def _time(text: str, zone: str, field: str) -> datetime | None:
    """A datetime-local input, read in the schedule's time zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(f"{field}: {text!r} is not a date and time.") from None
    if moment.tzinfo is None:
        try:
            moment = moment.replace(tzinfo=ZoneInfo(zone or "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationFailed(f"time zone {zone!r} is not an IANA time zone "
                                   "(e.g. Europe/Paris).") from None
    return moment


@bp.route("/schedules", methods=["GET", "POST"])
@login_required()
def schedules():
    if request.method == "POST":
        require("author")
        form = request.form
        zone = form.get("time_zone", "UTC").strip() or "UTC"
        with saving("Schedule created."):
            fields = {"frequency": form.get("frequency", ""),
                      "interval": _whole(form.get("interval") or "1", "Interval"),
                      "time_zone": zone,
                      "start_time": _time(form.get("start_time", ""), zone, "start"),
                      "expiry_time": _time(form.get("expiry_time", ""), zone, "expiry"),
                      "week_days": form.getlist("week_days"),
                      "month_days": [_whole(d, "Month days") for d in
                                     form.get("month_days", "").replace(",", " ").split()],
                      "cron": form.get("cron", "").strip()}
            if fields["frequency"] != "Week":
                fields["week_days"] = []
            if fields["frequency"] != "Month":
                fields["month_days"] = []
            svc.create_schedule(db.session, name=form.get("name", "").strip(),
                                description=form.get("description", ""),
                                missed=form.get("missed", "run_once"),
                                **{k: v for k, v in fields.items() if v not in (None, "")})
        return redirect(url_for("portal.schedules"))
    stmt = select(Schedule)
    where = access.schedule_condition(db.session)
    if where is not None:
        stmt = stmt.where(where)
    items = db.session.scalars(stmt.order_by(Schedule.name).limit(1000)).all()
    return render_template("schedules.html", schedules=items, frequencies=FREQUENCIES,
                           week_days=WEEK_DAYS)


@bp.route("/schedules/<name>")
@login_required()
def schedule(name: str):
    item = svc.get_schedule(db.session, name)
    return render_template("schedule.html", schedule=item, runbooks=_runbook_names())


@bp.route("/schedules/<name>/<action>", methods=["POST"])
@login_required("author")
def schedule_action(name: str, action: str):
    item = svc.get_schedule(db.session, name)
    with saving("Saved.") as done:
        if action in ("enable", "disable"):
            svc.update_schedule(db.session, item, {"enabled": action == "enable"})
        elif action == "link":
            svc.link_runbook(db.session, item, get_runbook(db.session, request.form["runbook"]),
                             _pairs(request.form.get("parameters", "")),
                             request.form.get("worker_group") or None)
        elif action == "unlink":
            svc.unlink_runbook(db.session, item,
                               get_runbook(db.session, request.form["runbook"]))
        elif action == "delete":
            svc.delete_schedule(db.session, item)
            done.message = f"Deleted schedule {name}."
        else:
            raise ValidationFailed(f"Unknown action {action}.")
    if done.ok and action == "delete":
        return redirect(url_for("portal.schedules"))
    return redirect(url_for("portal.schedule", name=name))


@bp.route("/webhooks", methods=["GET", "POST"])
@login_required()
def webhooks():
    if request.method == "POST":
        require("author")
        form = request.form
        with saving() as done:
            hook, token = hooks.create_webhook(
                db.session, name=form.get("name", "").strip(),
                runbook=get_runbook(db.session, form.get("runbook", "")),
                parameters=_pairs(form.get("parameters", "")),
                worker_group=form.get("worker_group") or None,
                description=form.get("description", ""))
        if done.error:
            return redirect(url_for("portal.webhooks"))
        # shown once, in this answer only (never stored, not even in the session)
        url = request.url_root.rstrip("/") + f"/api/v1/webhooks/invoke/{token}"
        return _webhooks_page(new_url=url, new_name=hook.name)
    return _webhooks_page()


def _webhooks_page(**extra):
    stmt = access.scoped(db.session, select(Webhook), Webhook.runbook_id)
    items = db.session.scalars(stmt.order_by(Webhook.name).limit(1000)).all()
    return render_template("webhooks.html", webhooks=items, runbooks=_runbook_names(),
                           **extra)


@bp.route("/webhooks/<name>/<action>", methods=["POST"])
@login_required("author")
def webhook_action(name: str, action: str):
    hook = hooks.get_webhook(db.session, name)
    with saving("Saved."):
        if action in ("enable", "disable"):
            hooks.update_webhook(db.session, hook, {"enabled": action == "enable"})
        elif action == "delete":
            hooks.delete_webhook(db.session, hook)
        else:
            raise ValidationFailed(f"Unknown action {action}.")
    return redirect(url_for("portal.webhooks"))

