"""Live jobs for every reader in this web process, from one Redis subscription.

Followers of a job's output (GET /jobs/{id}/events: the API, the portal's job page,
`sma job output --follow`) and callers waiting for a job to end (start?wait=) take the job's
Feed (smaweb/livefeed.py) from the process's LiveHub. One thread of the hub (a greenlet under
gevent) holds the process's only pubsub connection (smaweb/livelistener.py), which hears every
job's announcements (one pattern subscription) while the hub has readers. When a worker
announces new records of a job someone here reads (after their commit, and after the final
status's), the hub has the feed read them once - one query however many follow the job - and
wakes its readers. Every TICK_SECONDS it also asks, in two queries for all its jobs, whether a
status or the last record changed unannounced (the reaper or another web process moved a job;
Redis restarted), and reads those jobs again; without Redis that is all it does: its readers
learn by polling, as before.

A waiting start registers its job with the hub after the start's commit and before the job
is published to the workers (`expect`): when the hub hears every announcement at that moment,
nothing that ends the job can be missed, so neither the hub nor the waiter reads the job
before its end is announced - no subscription, no read, no nudge per start. Otherwise (the
hub just starting, Redis away) the waiter registers after the publish and nudges the hub
(smaweb/livelistener.py), which reads the job at once: a job that ends meanwhile is seen
by that read, one that ends later by its announcement - either way within about a
millisecond of the worker's final commit. A follower's new job is read at the hub's next turn
(at most LISTEN_SECONDS, 0.5 s when the hub had no readers): with followers nudging it too,
`sma up`'s API answered in seconds while 200 followers connected (tests/test_live_scale.py,
4 runs of 4; the cause is not yet known); a stream is told of a later end by its announcement.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from flask import Flask, current_app
from sqlalchemy.orm import Session, sessionmaker

from smacommon.db import reading
from smacommon.streams import stream_channel
from smaweb.livefeed import Feed, JobState, Record, read_records, unannounced
from smaweb.livelistener import Listener

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0  # how often unannounced changes are looked for (the polling without Redis)
LISTEN_SECONDS = 0.1  # the longest the hub waits on Redis before it looks at its feeds again
IDLE_SECONDS = 10.0  # the hub's thread and connection end after this long without readers


class LiveHub:
    """The feeds of one web process, kept current by one thread and one Redis connection."""

    def __init__(self, factory: sessionmaker[Session], redis_url: str) -> None:
        self.factory = factory
        self.redis_url = redis_url
        self.feeds: dict[uuid.UUID, Feed] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.listener: Listener | None = None  # the hub thread's, while it runs
        self._publisher: redis.Redis | None = None

    @contextmanager
    def feed(self, job_id: uuid.UUID, records: bool = True,
             expected: tuple[JobState, int] | None = None) -> Iterator[Feed]:
        """The job's feed while the caller reads it (`records`: its output, else its status);
        `expected` comes from `expect`: the waiter's job, not yet published, as it is."""
        with self.lock:
            feed = self.feeds.get(job_id)
            new = feed is None
            if feed is None:
                feed = self.feeds[job_id] = Feed(job_id)
                if expected is not None:
                    feed.expect(*expected)
                    new = False  # the hub hears its announcements already: no nudge
            if records:
                feed.followers += 1
            else:
                feed.waiters += 1
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="sma-live-hub",
                                               daemon=True)
                self.thread.start()
                new = False  # its first turn subscribes to the job's channel
            listener = self.listener
        if new and listener is not None and not records:  # a waiter (see the docstring)
            self._nudge(listener)
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

    def expect(self, state: JobState) -> tuple[JobState, int] | None:
        """For a waiter's `feed`, its job as it is before it is published (`state`), when
        every announcement reaches the hub now: its end cannot be missed, so the job is not
        read until it is announced. None when the hub cannot promise that (not yet
        subscribed, no Redis): the waiter registers after the publish (`_wait` in
        smaweb/api/jobs.py), and the job is read at once."""
        listener = self.listener
        generation = listener.hears_all() if listener is not None else None
        return None if generation is None else (state, generation)

    @property
    def reads_new_feeds(self) -> bool:
        """A new feed is read by the hub right after its channel is subscribed (nudged now,
        else at the hub's next turn, LISTEN_SECONDS): its reader need not read it first.
        Without Redis, the hub reads it only at its next tick."""
        listener = self.listener
        return listener is not None and listener.subscribed

    def read(self, job_id: uuid.UUID, after_seq: int) -> list[Record]:
        """Records of the job after `after_seq`, straight from the database."""
        with self.factory() as session:
            return read_records(reading(session), job_id, after_seq)

    def announce(self, job_id: uuid.UUID) -> None:
        """Tell every web process's readers of the job to look again (a status changed)."""
        if not self.redis_url:
            return
        try:
            self.publisher().publish(stream_channel(str(job_id)), "")
        except (redis.RedisError, OSError):  # they look again within a tick in any case
            log.debug("could not announce job %s", job_id, exc_info=True)

    def publisher(self) -> redis.Redis:
        """The process's connection pool for publishing (thread-safe)."""
        if self._publisher is None:
            self._publisher = redis.Redis.from_url(self.redis_url, socket_timeout=5,
                                                   socket_connect_timeout=5)
        return self._publisher

    def _nudge(self, listener: Listener) -> None:
        """Have the hub subscribe to a new waiter's job's channel now, not at its next turn."""
        try:
            listener.nudge(self.publisher() if self.redis_url else None)
        except (redis.RedisError, OSError):  # its next turn subscribes in any case
            log.debug("could not wake the live hub", exc_info=True)

    def _run(self) -> None:
        listener = self.listener = Listener(self.redis_url, TICK_SECONDS)
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
                if self.listener is listener:
                    self.listener = None
            listener.close()

    def _step(self, listener: Listener, feeds: dict[uuid.UUID, Feed], tick: bool) -> None:
        by_channel = {feed.channel: feed for feed in feeds.values()}
        # a new feed is read, unless it was expected on this connection (nothing missed)
        new = {feed for feed in map(by_channel.get, listener.follow(set(by_channel)))
               if feed is not None and feed.expected_on != listener.generation}
        announced = listener.announced(LISTEN_SECONDS if feeds else 0.5)
        if announced:  # feeds registered while it listened are told too
            with self.lock:
                by_channel = {feed.channel: feed for feed in self.feeds.values()}
        due = {by_channel[c] for c in announced if c in by_channel}
        due |= {feed for feed in feeds.values() if feed.more}
        if tick and feeds:
            due |= unannounced(self.factory, feeds)
        for feed in new | due:  # a waiter answers with the whole row of an announced end
            feed.refresh(self.factory, whole=feed in due)


def init_app(app: Flask) -> None:
    """One hub per app (per web process)."""
    app.extensions["sma_live"] = LiveHub(app.extensions["sma_db"].factory,
                                         app.config["SMA_SETTINGS"].effective_redis_url)


def live_hub() -> LiveHub:
    """The current app's hub."""
    return current_app.extensions["sma_live"]
