"""The worker's link to the broker: it survives a Redis restart, reconnects within seconds,
and then sends again at once what the broker lost (see smaworker.resend).

Why workers died on a Redis restart (kombu 5.7, Celery 5.7): the connection drops while
the task channel waits on BRPOP and holds a message not yet acknowledged. Celery's consumer
first `collect()`s the connection, which closes the task channel: its `close()` starts by
reading the pending BRPOP reply (kombu PR #1733, so that a popped message is not lost at
shutdown), the read raises ConnectionError, and the `close()` ends there, ignored as a
connection error. The transport then closes its other channels; the remote-control one,
deleting its auto-delete fanout queue, raises ConnectionError too, before the task channel
came round again; `collect()` ignores that and detaches the transport (`transport.client =
None`). Celery then closes the connection once more: the task channel now gets past the
read, restores its unacknowledged messages ("Restoring N unacknowledged message(s)")
through a new Redis pool built from `transport.client`, which is None: an AttributeError,
not a connection error, so it escapes and stops the worker ("Unrecoverable error:
AttributeError(\"'NoneType' object has no attribute 'hostname'\")") once its running jobs
end. It needs a BRPOP in flight and a message held, hence only some restarts.
"""

from __future__ import annotations

import functools
import logging
import threading
from queue import Empty

from celery import bootsteps
from celery.worker.consumer import Consumer as CeleryConsumer

log = logging.getLogger(__name__)

# a lost broker is tried again after 1 s, then every 2 s: a worker is back within 2 s of
# the broker (kombu's default backs off to 30 s)
RECONNECT_INTERVALS = {"interval_start": 1.0, "interval_step": 1.0, "interval_max": 2.0}


def patch_kombu() -> None:
    """Let a channel whose BRPOP reply died with its connection close all the same (once)."""
    from kombu.transport import redis as kombu_redis  # here: only a worker needs it

    channel = kombu_redis.Channel
    if getattr(channel.close, "sma_patched", False):
        return
    if not all(hasattr(channel, name) for name in ("_in_poll", "_brpop_read")):
        log.warning("kombu's Redis channel changed; its close after a lost connection is "
                    "not patched (a Redis restart may stop this worker)")
        return
    close = channel.close

    @functools.wraps(close)
    def close_after_lost_read(self) -> None:
        if self._in_poll and not self.closed:
            try:
                self._brpop_read()  # as kombu's close does, but a dead connection is no error:
            except Empty:           # its reply, and any message in it, went with the server
                pass
            except self.connection_errors:
                pass
        close(self)

    close_after_lost_read.sma_patched = True
    channel.close = close_after_lost_read


class Consumer(CeleryConsumer):
    """Celery's consumer, trying a lost broker again every 2 s at most, for ever."""

    def ensure_connected(self, conn):
        conn.ensure_connection = functools.partial(conn.ensure_connection,
                                                   **RECONNECT_INTERVALS)
        return super().ensure_connected(conn)


class ResendOnConnect(bootsteps.StartStopStep):
    """At each connection to the broker, the first and every one after a loss: send again
    the waiting jobs of this worker's group that have no message in its queue."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent) -> None:
        # off the consumer's thread: the database may be slow, and the consumer must consume
        threading.Thread(target=_resend, name="sma-resend", daemon=True).start()


def _resend() -> None:
    from smacommon.db import get_engine
    from smacommon.queue import enqueue_job
    from smaworker.celery_app import settings
    from smaworker.resend import resend_waiting

    try:
        sent = resend_waiting(get_engine(settings.effective_database_url),
                              settings.effective_redis_url, settings.worker_group,
                              enqueue_job)
    except Exception as exc:  # the reaper sends them after SMA_REQUEUE_NEW_AFTER_SECONDS
        log.warning("could not send waiting jobs again after connecting to the broker: %s",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return
    if sent:
        log.info("sent %d waiting job(s) of group %r again: the broker had no message "
                 "for them", sent, settings.worker_group)
