"""Live jobs for every reader in this web process, from one Redis subscription.

Followers of a job's output (GET /jobs/{id}/events: the API, the portal's job page,
`sma job output --follow`) and callers waiting for a job to end (start?wait=) take the job's
Feed from the process's LiveHub. One thread of the hub (a greenlet under gevent) holds the
process's only pubsub connection, subscribed to the channels of the jobs someone reads.
When a worker announces new records of a job (after their commit, and after the final
status's), the hub reads them once - one query however many follow the job - keeps them in
the feed and wakes its readers. Every TICK_SECONDS it also asks, in two queries for all its
jobs, whether a status or the last record changed unannounced (the reaper or another web
process moved a job; Redis restarted), and reads those jobs again; without Redis that is
all it does: its readers learn by polling, as before.

A feed keeps the records it read (a bounded tail); a reader further behind (an early
Last-Event-ID, a slow client) reads its own from the database.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask, current_app
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker

from smacommon.db import read_connection, reading
from smacommon.models import Job, JobStream
from smacommon.streams import stream_channel

log = logging.getLogger(__name__)

BATCH = 1000  # records read at once
TICK_SECONDS = 1.0  # how often unannounced changes are looked for (the polling without Redis)
LISTEN_SECONDS = 0.1  # the longest the hub waits on Redis before it looks at its feeds again
IDLE_SECONDS = 10.0  # the hub's thread and connection end after this long without readers
RETRY_SECONDS = 2.0  # between tries to reach a lost Redis
KEEP_RECORDS = 2 * BATCH  # the tail a feed keeps for its followers
KEEP_BYTES = 1 << 20
CHUNK = 500  # job ids per query of a tick

RECORD_COLUMNS = (JobStream.seq, JobStream.attempt, JobStream.stream, JobStream.time,
                  JobStream.text, JobStream.value)
STATE_COLUMNS = (Job.status, Job.status_reason, Job.exit_code, Job.exception)


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
        self.read_once = False
        self.with_records = False  # the last read took records too (state and tail agree)
        self.known = False  # base and last_seq have been read
        self.records: list[Record] = []  # seq base+1 .. last_seq
        self.kept_bytes = 0
        self.base = 0
        self.last_seq = 0
        self.more = False
        self.version = 0

    def refresh(self, factory: sessionmaker[Session]) -> None:
        """Read the job's state, then (for followers) the records written since the last read:
        in that order, so a final state is never seen before its last records."""
        with self.refreshing:
            with_records, known, last = self.followers > 0, self.known, None
            records: list[Record] = []
            with read_connection(factory.kw["bind"]) as conn:  # Core: no ORM per read
                row = conn.execute(select(*STATE_COLUMNS).where(Job.id == self.job_id)).first()
                if with_records and known:
                    records = read_records(conn, self.job_id, self.last_seq)
                elif with_records:  # followers before this point read their history themselves
                    last = conn.scalar(select(func.max(JobStream.seq))
                                       .where(JobStream.job_id == self.job_id)) or 0
            self._update(JobState(*row) if row else None, with_records, records, last)

    def _update(self, state: JobState | None, with_records: bool, records: list[Record],
                last: int | None) -> None:
        with self.changed:
            changed = state != self.state or bool(records) or not self.read_once
            self.state, self.read_once, self.with_records = state, True, with_records
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

    def current(self, factory: sessionmaker[Session]) -> tuple[JobState | None, int]:
        """The job's state (read now if never read) and the version it belongs to."""
        if not self.read_once:
            self.refresh(factory)
        with self.changed:
            return self.state, self.version

    def wait(self, version: int, timeout: float) -> None:
        """Until the feed changes from `version`, or `timeout` seconds."""
        with self.changed:
            if self.version == version and timeout > 0:
                self.changed.wait(timeout)


class LiveHub:
    """The feeds of one web process, kept current by one thread and one Redis connection."""

    def __init__(self, factory: sessionmaker[Session], redis_url: str) -> None:
        self.factory = factory
        self.redis_url = redis_url
        self.feeds: dict[uuid.UUID, Feed] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self._publisher: redis.Redis | None = None

    @contextmanager
    def feed(self, job_id: uuid.UUID, records: bool = True) -> Iterator[Feed]:
        """The job's feed while the caller reads it (`records`: its output, else its status)."""
        with self.lock:
            feed = self.feeds.get(job_id)
            if feed is None:
                feed = self.feeds[job_id] = Feed(job_id)
            if records:
                feed.followers += 1
            else:
                feed.waiters += 1
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="sma-live-hub",
                                               daemon=True)
                self.thread.start()
        try:
            yield feed
        finally:
            with self.lock:
                if records:
                    feed.followers -= 1
                    if not feed.followers:
                        feed.forget_records()
                else:
                    feed.waiters -= 1
                if not feed.followers and not feed.waiters:
                    del self.feeds[job_id]

    def read(self, job_id: uuid.UUID, after_seq: int) -> list[Record]:
        """Records of the job after `after_seq`, straight from the database."""
        with self.factory() as session:
            return read_records(reading(session), job_id, after_seq)

    def announce(self, job_id: uuid.UUID) -> None:
        """Tell every web process's readers of the job to look again (a status changed)."""
        if not self.redis_url:
            return
        try:
            if self._publisher is None:
                self._publisher = redis.Redis.from_url(self.redis_url, socket_timeout=5,
                                                       socket_connect_timeout=5)
            self._publisher.publish(stream_channel(str(job_id)), "")
        except (redis.RedisError, OSError):  # they look again within a tick in any case
            log.debug("could not announce job %s", job_id, exc_info=True)

    def _run(self) -> None:
        listener = _Listener(self.redis_url)
        next_tick = time.monotonic() + TICK_SECONDS
        idle_since: float | None = None
        try:
            while True:
                now = time.monotonic()
                with self.lock:
                    feeds = dict(self.feeds)
                    if feeds:
                        idle_since = None
                    elif idle_since is None:
                        idle_since = now
                    elif now - idle_since > IDLE_SECONDS:
                        self.thread = None
                        return
                try:
                    self._step(listener, feeds, now >= next_tick)
                except Exception:  # the database away, say: readers wait, the hub goes on
                    log.warning("live output: could not read jobs; trying again",
                                exc_info=True)
                    time.sleep(TICK_SECONDS)
                if now >= next_tick:
                    next_tick = now + TICK_SECONDS
        finally:
            with self.lock:
                if self.thread is threading.current_thread():
                    self.thread = None
            listener.close()

    def _step(self, listener: _Listener, feeds: dict[uuid.UUID, Feed], tick: bool) -> None:
        by_channel = {feed.channel: feed for feed in feeds.values()}
        due = {by_channel[c] for c in listener.follow(set(by_channel))}
        due |= {by_channel[c] for c in listener.announced(LISTEN_SECONDS if feeds else 0.5)
                if c in by_channel}
        due |= {feed for feed in feeds.values() if feed.more}
        if tick and feeds:
            due |= self._unannounced(feeds)
        for feed in due:
            feed.refresh(self.factory)

    def _unannounced(self, feeds: dict[uuid.UUID, Feed]) -> set[Feed]:
        """The feeds whose job changed since they were read (two queries for all)."""
        ids = list(feeds)
        states: dict[uuid.UUID, JobState] = {}
        lasts: dict[uuid.UUID, int] = {}
        with read_connection(self.factory.kw["bind"]) as conn:
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


class _Listener:
    """The hub's pubsub connection, subscribed to the channels of the jobs read."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pubsub: Any = None
        self.channels: set[str] = set()
        self.retry_at = 0.0

    def follow(self, channels: set[str]) -> set[str]:
        """Subscribe to `channels` and no others; the ones new to the subscription (all of
        them after a reconnect: what was announced meanwhile is read again)."""
        if not self.url or (self.pubsub is None and time.monotonic() < self.retry_at):
            return set()
        try:
            if self.pubsub is None:  # named, so CLIENT LIST tells whose it is
                client = redis.Redis.from_url(self.url, socket_timeout=5,
                                              socket_connect_timeout=5,
                                              client_name=f"sma-live-{os.getpid()}")
                self.pubsub, self.channels = client.pubsub(), set()
            added, dropped = channels - self.channels, self.channels - channels
            if added:
                self.pubsub.subscribe(*added)
            if dropped:
                self.pubsub.unsubscribe(*dropped)
            self.channels = set(channels)
            return added
        except (redis.RedisError, OSError) as exc:
            self._lost(exc)
            return set()

    def announced(self, timeout: float) -> set[str]:
        """The channels announced within `timeout` seconds (sleeps them without Redis)."""
        if self.pubsub is None or not self.channels:
            time.sleep(timeout)
            return set()
        channels: set[str] = set()
        try:
            message = self.pubsub.get_message(timeout=timeout)
            while message is not None:
                if message["type"] == "message":
                    channel = message["channel"]
                    channels.add(channel.decode() if isinstance(channel, bytes) else channel)
                message = self.pubsub.get_message(timeout=0.0)
        except (redis.RedisError, OSError) as exc:
            self._lost(exc)
        return channels

    def _lost(self, exc: BaseException) -> None:
        log.warning("live output: Redis is not reachable (%s); polling the database every "
                    "%g s until it is", str(exc).splitlines()[0] if str(exc) else exc,
                    TICK_SECONDS)
        self.close()
        self.retry_at = time.monotonic() + RETRY_SECONDS

    def close(self) -> None:
        if self.pubsub is not None:
            try:
                self.pubsub.close()
            except (redis.RedisError, OSError):
                pass
        self.pubsub, self.channels = None, set()


def init_app(app: Flask) -> None:
    """One hub per app (per web process)."""
    app.extensions["sma_live"] = LiveHub(app.extensions["sma_db"].factory,
                                         app.config["SMA_SETTINGS"].effective_redis_url)


def live_hub() -> LiveHub:
    """The current app's hub."""
    return current_app.extensions["sma_live"]
