"""/api/v1/schedules: when runbooks run by themselves; /runbooks/{runbook}/schedules."""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import select

from smacommon.models import JobSchedule, Schedule
from smacommon.schemas.schedule import (
    LinkCreateSchema,
    LinkListSchema,
    LinkSchema,
    ScheduleCreateSchema,
    SchedulePageSchema,
    ScheduleQueryArgsSchema,
    ScheduleSchema,
    ScheduleUpdateSchema,
)
from smacommon.services import access
from smacommon.services import schedules as svc
from smacommon.services.runbooks import get_runbook
from smaweb.extensions import SmaBlueprint, db
from smaweb.pagination import keyset_page

blp = SmaBlueprint("schedules", __name__, url_prefix="/api/v1",
                   description="Schedules, and the runbooks linked to them.")


@blp.route("/schedules")
class Schedules(MethodView):
    @blp.operation_id("listSchedules")
    @blp.arguments(ScheduleQueryArgsSchema, location="query")
    @blp.response(200, SchedulePageSchema)
    def get(self, args):
        """List schedules, newest first."""
        stmt = select(Schedule)
        where = access.schedule_condition(db.session)  # a role binding's runbooks only
        if where is not None:
            stmt = stmt.where(where)
        items, cursor = keyset_page(stmt, Schedule.created_at, Schedule.id,
                                    args["limit"], args["cursor"], db.session.scalars)
        return {"items": items, "next_cursor": cursor}

    @blp.operation_id("createSchedule")
    @blp.arguments(ScheduleCreateSchema)
    @blp.response(201, ScheduleSchema)
    def post(self, data):
        """Create a schedule: OneTime, Minute, Hour, Day, Week, Month or Cron."""
        schedule = svc.create_schedule(db.session, **data)
        db.session.commit()
        return schedule


@blp.route("/schedules/<name>")
class ScheduleByName(MethodView):
    @blp.operation_id("getSchedule")
    @blp.response(200, ScheduleSchema)
    def get(self, name):
        """Get a schedule, with its next run."""
        return svc.get_schedule(db.session, name)

    @blp.operation_id("updateSchedule")
    @blp.arguments(ScheduleUpdateSchema)
    @blp.response(200, ScheduleSchema)
    def patch(self, data, name):
        """Change a schedule; beat uses the change at its next check (within seconds)."""
        schedule = svc.update_schedule(db.session, svc.get_schedule(db.session, name), data)
        db.session.commit()
        return schedule

    @blp.operation_id("deleteSchedule")
    @blp.response(204)
    def delete(self, name):
        """Delete a schedule and its links."""
        svc.delete_schedule(db.session, svc.get_schedule(db.session, name))
        db.session.commit()


@blp.route("/schedules/<name>/runbooks")
class ScheduleLinks(MethodView):
    @blp.operation_id("listScheduleRunbooks")
    @blp.response(200, LinkListSchema)
    def get(self, name):
        """The runbooks linked to a schedule."""
        links = svc.get_schedule(db.session, name).links
        return {"items": [link for link in links if access.covers_id(db.session, link.runbook_id)]}

    @blp.operation_id("linkScheduleRunbook")
    @blp.arguments(LinkCreateSchema)
    @blp.response(201, LinkSchema)
    def post(self, data, name):
        """Link a published runbook, with parameters checked as a start checks them."""
        schedule = svc.get_schedule(db.session, name)
        runbook = get_runbook(db.session, data["runbook"])
        link = svc.link_runbook(db.session, schedule, runbook, data["parameters"],
                                data.get("worker_group"), data["arguments"])
        db.session.commit()
        return link


@blp.route("/schedules/<name>/runbooks/<runbook>")
class ScheduleLink(MethodView):
    @blp.operation_id("unlinkScheduleRunbook")
    @blp.response(204)
    def delete(self, name, runbook):
        """Unlink a runbook from a schedule."""
        svc.unlink_runbook(db.session, svc.get_schedule(db.session, name),
                           get_runbook(db.session, runbook))
        db.session.commit()


@blp.route("/runbooks/<runbook>/schedules")
class RunbookSchedules(MethodView):
    @blp.operation_id("listRunbookSchedules")
    @blp.response(200, LinkListSchema)
    def get(self, runbook):
        """The schedules a runbook is linked to."""
        rb = get_runbook(db.session, runbook)
        return {"items": db.session.scalars(
            select(JobSchedule).where(JobSchedule.runbook_id == rb.id)
            .order_by(JobSchedule.created_at)).all()}
