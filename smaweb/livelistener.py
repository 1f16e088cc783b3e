"""The live hub's one Redis pubsub connection: subscribe, listen, reconnect.

It hears every job's announcements (one pattern subscription, `sma:job:*:streams`), so a
new reader's job needs no subscription of its own: once the pattern's confirmation has been
read (`hears_all`), whatever is announced from then on reaches the hub, and a waiting start
that registers its job before the job is published knows its end will be heard. The hub
(smaweb/livehub.py) tells it which jobs' channels it follows (to learn which are new since
a reconnect) and asks it which were announced. When Redis is lost it closes the connection
and tries again every RETRY_SECONDS; meanwhile it reports nothing and the hub's readers
learn by polling. Each connection is a new `generation`: what was announced while none was
connected is lost, so the hub reads every job it follows again.

A new reader must not wait for the hub's next turn before its job's channel is subscribed
(a job that ends within that turn would be noticed that much late), so the listener is also
subscribed to a channel of its own, `wake_channel`: a message there (`nudge`) ends its
wait on Redis at once; without Redis, `nudge` ends the pause that stands in for that wait.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from typing import Any

import redis

from smacommon.streams import stream_channel

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0  # between tries to reach a lost Redis
EVERY_JOB = stream_channel("*")  # the pattern of every job's channel
# connections are numbered across the process's listeners: a hub's thread that ends when
# idle takes its listener with it, and a feed expected on the old one must not pass for
# one expected on the new one
_connections = itertools.count(1)


class Listener:
    """The hub's pubsub connection, subscribed to every job's channel."""

    def __init__(self, url: str, poll_seconds: float) -> None:
        self.url = url
        self.poll_seconds = poll_seconds  # how often the hub polls the database (for the log)
        self.pubsub: Any = None
        self.channels: set[str] = set()
        self.retry_at = 0.0
        self.generation = 0  # the current connection's number (0: none yet)
        self.confirmed = False  # the pattern's confirmation read on this connection
        self.wake_channel = f"sma:live-hub:{os.getpid()}:{uuid.uuid4().hex}"
        self.woken = threading.Event()  # a nudge not yet taken by `announced`

    def follow(self, channels: set[str]) -> set[str]:
        """Follow `channels` (connecting first if need be): the ones new since the last
        call, all of them after a reconnect (what was announced meanwhile is read again)."""
        if not self.url or (self.pubsub is None and time.monotonic() < self.retry_at):
            return set()
        try:
            if self.pubsub is None:  # named, so CLIENT LIST tells whose it is
                client = redis.Redis.from_url(self.url, socket_timeout=5,
                                              socket_connect_timeout=5,
                                              client_name=f"sma-live-{os.getpid()}")
                pubsub = client.pubsub()
                pubsub.psubscribe(EVERY_JOB)
                pubsub.subscribe(self.wake_channel)
                self.pubsub, self.channels, self.confirmed = pubsub, set(), False
                self.generation = next(_connections)
        except (redis.RedisError, OSError) as exc:
            self._lost(exc)
            return set()
        added = channels - self.channels
        self.channels = set(channels)
        return added

    @property
    def subscribed(self) -> bool:
        """Connected to Redis: a message on `wake_channel` reaches it."""
        return self.pubsub is not None

    def hears_all(self) -> int | None:
        """The connection's generation while every job's announcement reaches it (the
        pattern's confirmation has been read), else None: read from another thread, a
        later disconnect shows as a new generation."""
        generation = self.generation
        return generation if self.pubsub is not None and self.confirmed else None

    def nudge(self, publisher: Any) -> None:
        """End the current (or next) wait of `announced` now: from another thread, through
        `publisher` (a redis.Redis) when subscribed. Raises what `publisher` raises."""
        if self.woken.is_set():  # one nudge not yet taken is enough (many readers at once)
            return
        self.woken.set()
        if self.pubsub is not None:
            publisher.publish(self.wake_channel, "")

    def announced(self, timeout: float) -> set[str]:
        """The channels announced within `timeout` seconds, or until nudged (without Redis,
        it waits as long for a nudge)."""
        if self.pubsub is None:
            self.woken.wait(timeout)
            self.woken.clear()
            return set()
        self.woken.clear()
        channels: set[str] = set()
        try:
            message = self.pubsub.get_message(timeout=timeout)
            while message is not None:
                kind = message["type"]
                if kind == "pmessage":
                    channel = message["channel"]
                    channels.add(channel.decode() if isinstance(channel, bytes) else channel)
                elif kind == "psubscribe":
                    self.confirmed = True
                message = self.pubsub.get_message(timeout=0.0)
        except (redis.RedisError, OSError) as exc:
            self._lost(exc)
        return channels

    def _lost(self, exc: BaseException) -> None:
        log.warning("live output: Redis is not reachable (%s); polling the database every "
                    "%g s until it is", str(exc).splitlines()[0] if str(exc) else exc,
                    self.poll_seconds)
        self.close()
        self.retry_at = time.monotonic() + RETRY_SECONDS

    def close(self) -> None:
        """Drop the connection (the next `follow` subscribes anew)."""
        if self.pubsub is not None:
            try:
                self.pubsub.close()
            except (redis.RedisError, OSError):
                pass
        self.pubsub, self.channels, self.confirmed = None, set(), False
