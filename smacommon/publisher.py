"""Publishing `sma.run_job` messages straight to Redis, as Celery's worker reads them.

`send_task` builds a Celery app's message through kombu's producer, declares the queue and
its binding, and pushes the message through kombu's virtual channel: about 1.2 ms per job,
of a start that is otherwise a short transaction. The message it leaves in Redis is plain
JSON on a list (kombu's Redis transport, the queue's name as the key, `LPUSH`; the worker
takes from the other end with `BRPOP`): this module writes the same message itself, one
`LPUSH` for a start, one `LPUSH` of many values for a batch (one round trip for 1,000 jobs).

The message is Celery's task protocol 2 (celery/app/amqp.py `as_task_v2`), as kombu's
transport stores it (kombu/transport/virtual `prepare_message` and `basic_publish`): the
body `[args, kwargs, embed]` as JSON in base64, the task's name and id in the headers, the
delivery tag kombu's acknowledgement keeps the message under in `properties`. Priority 0,
the only one sma sends, is the queue's own key (other priorities use `<queue>\\x06\\x16<n>`).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from smacommon.settings import Settings

if TYPE_CHECKING:
    import redis

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
# Celery's publish retry policy (smacommon.queue.celery_config): a refused connection is
# tried twice more, 0 s then 0.2 s later; a broker that does not answer (a timeout: the
# command may have arrived) is not tried again, so it holds a start CONNECT_TIMEOUT at most;
# then the caller logs it, and the reaper (or a worker connecting) sends the job again
RETRY_DELAYS = (0.0, 0.2)
CONNECT_TIMEOUT = 3.0


def run_job_message(task: str, job_id: str, queue: str, origin: str, reply_to: str) -> bytes:
    """One task message for `job_id` on `queue`, byte for byte the shape send_task stores."""
    task_id = str(uuid.uuid4())
    args = [job_id]
    body = json.dumps([args, {}, _EMBED]).encode()
    headers = {
        "lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None,
        "expires": None, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": repr(args), "kwargsrepr": "{}", "origin": origin, "ignore_result": None,
        "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }
    properties = {
        "correlation_id": task_id, "reply_to": reply_to, "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
        "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
    }
    return json.dumps({
        "body": base64.b64encode(body).decode(), "content-encoding": "utf-8",
        "content-type": "application/json", "headers": headers, "properties": properties,
    }).encode()


class Publisher:
    """One Redis connection pool per process, shared by its threads and greenlets: each
    publish borrows a connection of its own for one command (redis-py's pool hands out a
    free one, or opens another, under its lock), so no two callers interleave on a socket.
    A forked child gets a fresh pool (redis-py checks the pid)."""

    def __init__(self, settings: Settings, task: str) -> None:
        # redis-py is imported here, when a process first publishes: smacommon.queue (which
        # imports this module) is imported by commands that never do, `sma worker` among
        # them before it has checked it may read the broker's password
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.task = task
        self.refused: type[Exception] = redis.ConnectionError
        # no retries of redis-py's own: RETRY_DELAYS are all there are
        self.client: redis.Redis = redis.Redis.from_url(
            settings.effective_redis_url, socket_timeout=CONNECT_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT, health_check_interval=30,
            retry=Retry(NoBackoff(), 0))
        self.origin = f"gen{os.getpid()}@{socket.gethostname()}"
        self.reply_to = str(uuid.uuid4())  # as Celery's app.thread_oid: unused by sma

    def publish(self, jobs: Iterable[tuple[str, str]]) -> None:
        """A message for each (job id, queue) pair: one LPUSH per queue, in order (the
        worker pops the first pushed first), all in one round trip."""
        by_queue: dict[str, list[bytes]] = {}
        for job_id, queue in jobs:
            by_queue.setdefault(queue, []).append(
                run_job_message(self.task, job_id, queue, self.origin, self.reply_to))
        if len(by_queue) == 1:
            ((queue, messages),) = by_queue.items()
            self._retrying(lambda: self.client.lpush(queue, *messages))
        elif by_queue:
            self._retrying(lambda: self._pipelined(by_queue))

    def _pipelined(self, by_queue: dict[str, list[bytes]]) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for queue, messages in by_queue.items():
                pipe.lpush(queue, *messages)
            pipe.execute()

    def _retrying(self, send: Callable[[], object]) -> None:
        for delay in RETRY_DELAYS:
            try:
                send()
                return
            except self.refused:
                time.sleep(delay)
        send()

    def close(self) -> None:
        self.client.close()


_lock = threading.Lock()
_publisher: Publisher | None = None


def publisher(settings: Settings, task: str,
              check: Callable[[Settings], None] | None = None) -> Publisher:
    """This process's publisher, built once (after `check` of the settings, which raises
    when they name no broker: done once, as the broker's URL is read once)."""
    global _publisher
    built = _publisher  # read once: another thread may reset it meanwhile
    if built is not None:
        return built
    with _lock:
        if _publisher is None:
            if check is not None:
                check(settings)
            _publisher = Publisher(settings, task)
        return _publisher


def reset_publisher() -> None:
    """Forget the publisher (after the settings changed, e.g. in tests)."""
    global _publisher
    with _lock:
        old, _publisher = _publisher, None
    if old is not None:
        old.close()
