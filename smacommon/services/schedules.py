"""Schedules: create and change them, link runbooks, and fire what is due (called by beat).

Firing is safe with any number of beat processes: a schedule's fire is claimed by one
conditional UPDATE of its `next_run` (compare and set), and every (link, fire time) is a
primary key in `schedule_fires`, so each fire time starts at most one job per link.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from smacommon import arguments as positional
from smacommon.db import reading, utcnow
from smacommon.errors import (
    ConfigurationError,
    Conflict,
    NotFound,
    NotPublished,
    ValidationFailed,
)
from smacommon.models import JobSchedule, Runbook, Schedule, ScheduleFire
from smacommon.names import check_name
from smacommon.parameters import validate
from smacommon.recurrence import OCCURRENCES, Recurrence, RecurrenceError
from smacommon.services import access, by_id_or_name, fixed_parameters
from smacommon.services.audit import Actor, act_as, record
from smacommon.services.jobs import start_job
from smacommon.workergroups import validate_worker_group

log = logging.getLogger(__name__)

# a fire time more than this late counts as missed (beat was down): see `missed`
MISSED_AFTER = timedelta(seconds=60)
MISSED_POLICIES = ("run_once", "skip")
RECURRENCE_FIELDS = ("frequency", "interval", "start_time", "expiry_time", "time_zone",
                     "week_days", "month_days", "monthly_occurrences", "cron")


class ScheduleNotFound(NotFound):
    message = "Schedule not found."


def recurrence_of(fields: Any) -> Recurrence:
    """The Recurrence of a schedule (or of a dict of its fields); 400 when it cannot work."""
    get = fields.get if isinstance(fields, dict) else lambda k, d=None: getattr(fields, k, d)
    occurrences = []
    for item in get("monthly_occurrences") or []:
        nth = item.get("occurrence") if isinstance(item, dict) else None
        occurrences.append((OCCURRENCES.get(nth, 0), item.get("day", "")
                            if isinstance(item, dict) else ""))
    try:
        return Recurrence(
            frequency=get("frequency"), start_time=get("start_time"),
            interval=get("interval") or 1, time_zone=get("time_zone") or "UTC",
            expiry_time=get("expiry_time"), week_days=tuple(get("week_days") or ()),
            month_days=tuple(get("month_days") or ()), occurrences=tuple(occurrences),
            cron=get("cron") or "")
    except RecurrenceError as exc:
        raise ValidationFailed(str(exc), {"schedule": [str(exc)]}) from None


def get_schedule(session: Session, ref: str) -> Schedule:
    """A schedule by id or by name; ScheduleNotFound otherwise."""
    schedule = by_id_or_name(session, Schedule, ref)
    if schedule is None or not access.covers_schedule(session, schedule):
        raise ScheduleNotFound(f"Schedule {ref!r} not found.")
    return schedule


def _plan(schedule: Schedule, now: datetime) -> None:
    """Set next_run: the first fire time after now, None when none is left."""
    schedule.next_run = recurrence_of(schedule).next_after(now) if schedule.enabled else None


def create_schedule(session: Session, *, name: str, description: str = "",
                    enabled: bool = True, missed: str = "run_once", **fields: Any) -> Schedule:
    check_name(name)
    if session.scalar(select(func.count()).select_from(Schedule).where(Schedule.name == name)):
        raise Conflict(f"Schedule {name!r} already exists.")
    fields.setdefault("start_time", utcnow())
    recurrence_of(fields)
    schedule = Schedule(id=uuid.uuid4(), name=name, description=description, enabled=enabled,
                        missed=missed, **{k: v for k, v in fields.items() if v is not None})
    _plan(schedule, utcnow())
    session.add(schedule)
    session.flush()
    record(session, "schedule.create", _target(schedule))
    return schedule


def _target(schedule: Schedule) -> str:
    return f"/api/v1/schedules/{schedule.name}"


def update_schedule(session: Session, schedule: Schedule, changes: dict[str, Any]) -> Schedule:
    merged = {k: getattr(schedule, k) for k in RECURRENCE_FIELDS}
    merged.update({k: v for k, v in changes.items() if k in RECURRENCE_FIELDS})
    recurrence_of(merged)
    access.check_whole_schedule(session, schedule)
    for key, value in changes.items():
        setattr(schedule, key, value)
    _plan(schedule, utcnow())  # a change takes effect at beat's next check
    record(session, "schedule.update", _target(schedule), fields=sorted(changes))
    return schedule


def delete_schedule(session: Session, schedule: Schedule) -> None:
    """Delete a schedule and its links; its jobs stay."""
    access.check_whole_schedule(session, schedule)
    session.delete(schedule)
    record(session, "schedule.delete", _target(schedule))


def link_runbook(session: Session, schedule: Schedule, runbook: Runbook,
                 parameters: dict[str, Any] | None, worker_group: str | None,
                 arguments: Any = None) -> JobSchedule:
    """Link a published runbook, with parameters and positional arguments checked as a start
    would check them (the values of secret parameters sealed)."""
    version = runbook.published_version
    if version is None:
        raise NotPublished(f"Runbook {runbook.name!r} has no published version; publish it "
                           "before linking it to a schedule.")
    if session.scalar(select(JobSchedule).where(JobSchedule.schedule_id == schedule.id,
                                                JobSchedule.runbook_id == runbook.id)):
        raise Conflict(f"Runbook {runbook.name!r} is already linked to schedule "
                       f"{schedule.name!r}; unlink it first to change its parameters.")
    args, by_name = positional.bind(runbook.runbook_type, version.content, version.parameters,
                                    arguments, parameters)
    values = validate(by_name, parameters)
    if worker_group is not None:
        validate_worker_group(worker_group)
    link = JobSchedule(id=uuid.uuid4(), schedule_id=schedule.id, runbook_id=runbook.id,
                       worker_group=worker_group, created_at=utcnow(), arguments=args or None)
    fixed_parameters.store(link, version.parameters, values)
    session.add(link)
    session.flush()
    record(session, "schedule.link", f"{_target(schedule)}/runbooks/{runbook.name}")
    return link


def unlink_runbook(session: Session, schedule: Schedule, runbook: Runbook) -> None:
    link = session.scalar(select(JobSchedule).where(JobSchedule.schedule_id == schedule.id,
                                                    JobSchedule.runbook_id == runbook.id))
    if link is None:
        raise NotFound(f"Runbook {runbook.name!r} is not linked to schedule {schedule.name!r}.")
    session.delete(link)
    record(session, "schedule.unlink", f"{_target(schedule)}/runbooks/{runbook.name}")


# --- firing (beat) -----------------------------------------------------------------------

def fire_due(engine: Engine, now: datetime | None = None, enqueue=None,
             heartbeat_seconds: float = 15.0) -> int:
    """Start the jobs of every schedule whose next run has come; the number started."""
    now = now or utcnow()
    with Session(engine) as session:
        due = reading(session).scalars(
            select(Schedule.id).where(Schedule.enabled.is_(True), Schedule.next_run <= now)
            .order_by(Schedule.next_run).limit(500)).all()
    started = 0
    for schedule_id in due:
        try:
            started += _fire(engine, schedule_id, now, enqueue, heartbeat_seconds)
        except Exception:
            log.exception("schedule %s: fire failed; the next check tries again", schedule_id)
    return started


def _fire(engine: Engine, schedule_id: uuid.UUID, now: datetime, enqueue,
          heartbeat_seconds: float) -> int:
    with Session(engine) as session:
        act_as(session, Actor(f"schedule:{schedule_id}", "schedule"))
        schedule = session.get(Schedule, schedule_id)
        if schedule is None or not schedule.enabled or schedule.next_run is None \
                or schedule.next_run > now:
            return 0
        recurrence = recurrence_of(schedule)
        due_at = schedule.next_run
        late = now - due_at > MISSED_AFTER
        # beat was down across fire times: one run for the whole missed window
        fire_time = (recurrence.last_at_or_before(now, due_at) or due_at) if late else due_at
        claimed = session.execute(
            update(Schedule).where(Schedule.id == schedule_id, Schedule.next_run == due_at)
            .values(next_run=recurrence.next_after(now), last_run=fire_time)
            .execution_options(synchronize_session=False))
        if claimed.rowcount != 1:  # another beat fired it
            session.rollback()
            return 0
        if late and schedule.missed == "skip":
            log.info("schedule %s: skipped the fire time(s) missed since %s", schedule.name,
                     due_at.isoformat())
            session.commit()
            return 0
        started = 0
        for link in schedule.links:
            if session.get(ScheduleFire, (link.id, fire_time)) is not None:
                continue  # this fire time of this link already started its job
            try:  # checks come first: a refused start adds nothing to the session
                values, sealed = fixed_parameters.job_parameters(link)
                job = start_job(session, link.runbook, values, worker_group=link.worker_group,
                                arguments=link.arguments,
                                started_by=f"schedule:{schedule.id}", enqueue=enqueue,
                                heartbeat_seconds=heartbeat_seconds, sealed_names=sealed)
            except (NotPublished, ValidationFailed, ConfigurationError) as exc:
                log.warning("schedule %s: could not start %s: %s", schedule.name,
                            link.runbook.name, exc.message)
                job = None
            # the primary key makes a second fire of this time fail as a whole
            session.add(ScheduleFire(job_schedule_id=link.id, fire_time=fire_time,
                                     job_id=job.id if job else None))
            started += job is not None
        session.commit()
        return started
