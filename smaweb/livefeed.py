"""One job as a web process's readers see it: its state and a tail of its records.

A Feed is read for all the job's readers at once (smaweb/livehub.py decides when): its state,
then the records written since the last read. It keeps those records (a bounded tail); a
reader further behind (an early Last-Event-ID, a slow client) reads its own from the database
with read_records. `unannounced` finds, in two queries for all feeds, the jobs whose status or
last record changed without an announcement.
"""

from __future__ import annotations

import bisect
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker

from smacommon.db import read_connection
from smacommon.models import Job, JobStream
from smacommon.streams import stream_channel
from smaweb.jobpage import JOB_ROW

BATCH = 1000  # records read at once
KEEP_RECORDS = 2 * BATCH  # the tail a feed keeps for its followers
KEEP_BYTES = 1 << 20
CHUNK = 500  # job ids per query of `unannounced`

RECORD_COLUMNS = (JobStream.seq, JobStream.attempt, JobStream.stream, JobStream.time,
                  JobStream.text, JobStream.value)
STATE_COLUMNS = (Job.status, Job.status_reason, Job.exit_code, Job.exception)
# built once: a feed is read for every announcement of its job; with waiters, the whole row
# as the job's page has it (smaweb.jobpage), so a waiter answers with what the hub read
_STATE = select(*STATE_COLUMNS).where(Job.id == bindparam("job_id"))


@dataclass(frozen=True)
class JobState:
    """The columns of a job its readers are told."""

    status: str
    status_reason: str | None
    exit_code: int | None
    exception: str | None


class Record:
    """One stream record as readers get it; its event text is made once, for all of them."""

    __slots__ = ("seq", "attempt", "data", "size", "event")

    def __init__(self, row: Any) -> None:
        self.seq: int = row.seq
        self.attempt: int = row.attempt
        self.data = {"seq": row.seq, "attempt": row.attempt, "stream": row.stream,
                     "time": row.time.isoformat(), "text": row.text, "value": row.value}
        self.size = len(row.text or "") + 200
        self.event: bytes | None = None  # smaweb.events fills it on first use


def read_records(session: Session | Connection, job_id: uuid.UUID, after_seq: int,
                 limit: int = BATCH) -> list[Record]:
    """The job's records after `after_seq`, in order."""
    rows = session.execute(select(*RECORD_COLUMNS)
                           .where(JobStream.job_id == job_id, JobStream.seq > after_seq)
                           .order_by(JobStream.seq).limit(limit)).all()
    return [Record(row) for row in rows]


@dataclass(frozen=True)
class View:
    """A feed as one reader sees it at one moment."""

    state: JobState | None  # None: the job is gone (purged)
    records: list[Record]  # the records after the reader's seq that the feed holds
    behind: bool  # the reader's seq is before the feed's tail: it reads those itself
    last_seq: int  # the last record written before `state` was read...
    complete: bool  # ...when True; else more records wait to be read
    version: int


class Feed:
    """One job as this process's readers see it. Its data changes only under `changed`."""

    def __init__(self, job_id: uuid.UUID) -> None:
        self.job_id = job_id
        self.channel = stream_channel(str(job_id))
        self.changed = threading.Condition()
        self.refreshing = threading.Lock()
        self.followers = 0  # readers of its records (hub.lock)
        self.waiters = 0  # readers of its status only (hub.lock)
        self.state: JobState | None = None
        self.row: Any = None  # the job's whole row, read with `state` when it has waiters
        self.read_once = False
        self.with_records = False  # the last read took records too (state and tail agree)
        self.known = False  # base and last_seq have been read
        self.records: list[Record] = []  # seq base+1 .. last_seq
        self.kept_bytes = 0
        self.base = 0
        self.last_seq = 0
        self.more = False
        self.version = 0
        self.expected_on: int | None = None  # see expect

    def expect(self, state: JobState, generation: int) -> None:
        """The job is `state` and not yet published, and the hub's connection `generation`
        hears every announcement: it counts as read (its waiters wait for its end, and the
        hub does not read it as new unless it reconnected since)."""
        with self.changed:
            self.state, self.read_once, self.expected_on = state, True, generation
            self.version += 1

    def refresh(self, factory: sessionmaker[Session], whole: bool = True) -> None:
        """Read the job's state, then (for followers) the records written since the last read:
        in that order, so a final state is never seen before its last records. With waiters,
        the whole row, unless `whole` is False (a read that rarely sees the end: the one
        right after its channel is subscribed)."""
        with self.refreshing:
            with_records, known, last = self.followers > 0, self.known, None
            whole = whole and self.waiters > 0
            records: list[Record] = []
            with read_connection(factory.kw["bind"]) as conn:  # Core: no ORM per read
                row = conn.execute(JOB_ROW if whole else _STATE, {"job_id": self.job_id}).first()
                if with_records and known:
                    records = read_records(conn, self.job_id, self.last_seq)
                elif with_records:  # followers before this point read their history themselves
                    last = conn.scalar(select(func.max(JobStream.seq))
                                       .where(JobStream.job_id == self.job_id)) or 0
            state = None if row is None else JobState(row.status, row.status_reason,
                                                      row.exit_code, row.exception)
            self._update(state, with_records, records, last, row if whole else None)

    def _update(self, state: JobState | None, with_records: bool, records: list[Record],
                last: int | None, row: Any = None) -> None:
        with self.changed:
            changed = state != self.state or bool(records) or not self.read_once
            self.state, self.read_once, self.with_records = state, True, with_records
            self.row = row
            if last is not None:
                self.known, self.base, self.last_seq = True, last, last
                self.records, self.kept_bytes = [], 0
                changed = True
            if records:
                self.records.extend(records)
                self.kept_bytes += sum(r.size for r in records)
                self.last_seq = records[-1].seq
                self._trim()
            if with_records:
                self.more = len(records) == BATCH
            if changed:
                self.version += 1
                self.changed.notify_all()

    def _trim(self) -> None:
        cut, size, count = 0, self.kept_bytes, len(self.records)
        while count - cut > KEEP_RECORDS or (size > KEEP_BYTES and count - cut > 1):
            size -= self.records[cut].size
            cut += 1
        if cut:
            self.base = self.records[cut - 1].seq
            del self.records[:cut]
            self.kept_bytes = size

    def forget_records(self) -> None:
        """The last follower left: keep no tail (waiters need none)."""
        with self.changed:
            self.records, self.kept_bytes, self.base = [], 0, self.last_seq
            self.with_records = False

    def view(self, after_seq: int, factory: sessionmaker[Session]) -> View:
        """What a follower that has every record up to `after_seq` gets next."""
        if not self.with_records:  # its first follower: read the job with records now
            self.refresh(factory)
        with self.changed:
            behind = after_seq < self.base
            start = 0 if behind else bisect.bisect_right(self.records, after_seq,
                                                         key=lambda r: r.seq)
            return View(self.state, [] if behind else self.records[start:], behind,
                        self.last_seq, not self.more, self.version)

    def current(self, factory: sessionmaker[Session],
                read: bool = True) -> tuple[bool, JobState | None, int]:
        """Whether the job has been read, its state (None: gone) and the version it belongs
        to; never read, it is read now if `read` (else the hub reads it soon)."""
        if read and not self.read_once:
            self.refresh(factory)
        with self.changed:
            return self.read_once, self.state, self.version

    def row_of(self, version: int) -> Any:
        """The job's whole row, read with the state of `version` (None: read without it, or
        the feed changed since)."""
        with self.changed:
            return self.row if self.version == version else None

    def wait(self, version: int, timeout: float) -> None:
        """Until the feed changes from `version`, or `timeout` seconds."""
        with self.changed:
            if self.version == version and timeout > 0:
                self.changed.wait(timeout)


def unannounced(factory: sessionmaker[Session], feeds: dict[uuid.UUID, Feed]) -> set[Feed]:
    """The feeds whose job changed since they were read (two queries for all)."""
    ids = list(feeds)
    states: dict[uuid.UUID, JobState] = {}
    lasts: dict[uuid.UUID, int] = {}
    with read_connection(factory.kw["bind"]) as conn:
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i:i + CHUNK]
            for row in conn.execute(select(Job.id, *STATE_COLUMNS)
                                       .where(Job.id.in_(chunk))):
                states[row[0]] = JobState(*row[1:])
            followed = [j for j in chunk if feeds[j].followers]
            if followed:
                lasts.update((job_id, last) for job_id, last in conn.execute(
                    select(JobStream.job_id, func.max(JobStream.seq))
                    .where(JobStream.job_id.in_(followed))
                    .group_by(JobStream.job_id)))
    return {feed for job_id, feed in feeds.items()
            if not feed.read_once or states.get(job_id) != feed.state
            or lasts.get(job_id, 0) > feed.last_seq}
