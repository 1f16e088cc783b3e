"""The audit: who changed what, through which door, when and from where.

Each door (an API token, a portal session, a job's token, a webhook's token, the CLI on
the server, beat's timers) binds its Actor to the session it hands the services
(`act_as`). Every service that changes something calls `record` beside the change, in the
same transaction: a change rolled back leaves no event, a committed one always has its
event. A change through a session with no actor is a bug (NoActor), never a silent gap.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from smacommon.db import utcnow
from smacommon.models import AuditEvent

DOORS = ("api", "portal", "cli", "job", "webhook", "schedule")
# beat's timers (a schedule firing, the retention purge) are nobody's change: their jobs
# say started_by schedule:<id>, and what made them act (a schedule created, linked or
# enabled; the retention configured) is audited with the person who did it
UNAUDITED_DOORS = frozenset({"schedule"})
AUDITED_DOORS = tuple(d for d in DOORS if d not in UNAUDITED_DOORS)
_KEY = "sma_actor"
_events = AuditEvent.__table__


@dataclass(frozen=True)
class Actor:
    """Who changes something: `name` as the audit shows it ("admin", "token:<name>",
    "job:<id>", "webhook:<id>", "cli:<user>"), the door, the address it came from."""

    name: str
    door: str
    address: str = ""

    def __post_init__(self) -> None:
        if self.door not in DOORS:
            raise ValueError(f"unknown door {self.door!r}")


class NoActor(RuntimeError):
    """A service was asked to change something through a session no door bound an actor to."""


def act_as(session: Session, actor: Actor) -> Session:
    """Bind who acts to `session`: every change made through it is audited as them."""
    session.info[_KEY] = actor
    return session


def actor_of(session: Session) -> Actor:
    """The actor bound to `session`; NoActor when the caller bound none."""
    actor = session.info.get(_KEY)
    if actor is None:
        raise NoActor("No actor is bound to this session: the caller must act_as(session, "
                      "Actor(...)) before changing anything, so the change is audited.")
    return actor


def record(session: Session, action: str, target: str, **details: Any) -> None:
    """Add the audit event of a change to the change's own transaction.

    `target` is the object as its API path; `details` never holds a secret or a value a
    user typed (field names, counts, ids, numbers only).
    """
    record_many(session, [(action, target, details)])


def record_many(session: Session, events: list[tuple[str, str, dict[str, Any]]]) -> None:
    """The events (action, target, details) of many changes of one actor in one transaction,
    written with one prebuilt (multi-row) INSERT, not an ORM flush: every job start and
    every other audited change pays for it."""
    actor = actor_of(session)
    if actor.door in UNAUDITED_DOORS or not events:
        return
    now = utcnow()
    session.execute(insert(_events), [
        {"id": uuid.uuid4(), "time": now, "actor": actor.name[:200], "door": actor.door,
         "action": action, "target": target, "client_address": actor.address[:64],
         "details": details or None} for action, target, details in events])


def record_alone(engine: Engine, actor: Actor, action: str, target: str,
                 **details: Any) -> None:
    """The event of a change that ran in many short transactions of its own (a purge, a key
    rotation), written once the change is done."""
    if actor.door in UNAUDITED_DOORS:
        return
    with Session(engine) as session, session.begin():
        record(act_as(session, actor), action, target, **details)
