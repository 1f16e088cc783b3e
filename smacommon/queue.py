"""The Celery settings both sides share, and enqueueing a job by task *name*.

The web service never imports `smaworker`: it sends `sma.run_job` to the queue of the
job's worker group (`sma.q.<group>`, see smacommon.workergroups), written straight to Redis
in the message Celery's worker reads (smacommon.publisher), or through a send-only Celery
app built from these settings when Celery's task events are on (SMA_CELERY_EVENTS: the
"task-sent" event Flower shows is Celery's to send).
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from celery import Celery

from smacommon.publisher import CONNECT_TIMEOUT, publisher, reset_publisher
from smacommon.settings import Settings, get_settings
from smacommon.workergroups import queue_name

RUN_JOB_TASK = "sma.run_job"
log = logging.getLogger(__name__)
_lock = threading.Lock()
_producer_app: Celery | None = None


def broker_url(url: str) -> str:
    """A redis-py URL (SMA_REDIS_URL) as kombu's Redis transport takes it: a unix socket as
    redis+socket:// with the db as virtual_host, a user or password given in the query
    moved into the URL (kombu reads them only there)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = {k: v for k, v in query if k in ("username", "password", "db")}
    if parts.scheme != "unix" and not given.keys() & {"username", "password"}:
        return url
    userinfo, _, address = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    user = quote(given["username"], safe="") if "username" in given else user
    password = quote(given["password"], safe="") if "password" in given else password
    userinfo = f"{user}:{password}@" if password else f"{user}@" if user else ""
    rest = [(k, v) for k, v in query if k not in ("username", "password", "db")]
    if parts.scheme == "unix":
        rest.insert(0, ("virtual_host", given.get("db", "0")))
        return f"redis+socket://{userinfo}{parts.path}?{urlencode(rest)}"
    path = f"/{given['db']}" if "db" in given else parts.path
    return f"{parts.scheme}://{userinfo}{address}{path}" + (f"?{urlencode(rest)}" if rest else "")


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery configuration for the broker in `settings` (no result backend: the DB is truth)."""
    url = settings.effective_redis_url
    config = {
        "broker_url": broker_url(url),
        "broker_connection_retry_on_startup": True,
        # no acknowledgement emulation: kombu would keep each message taken in a Redis hash
        # until the pool process accepts it (two more round trips per job, and a third of
        # the consumer's work), to put it back after an hour if the worker died between.
        # The database is the source of truth: the job of such a message is still New (or
        # Resuming), and a worker of its group reconnecting (smaworker.resend) or the
        # reaper (SMA_REQUEUE_NEW_AFTER_SECONDS) sends it again; a duplicate is dropped by
        # the claim. A worker that stops cleanly puts back what it holds, as before.
        "broker_transport_options": {"ack_emulation": False},
        "task_ignore_result": True,
        # never Celery's "celery": every queue sma uses is in its own namespace
        "task_default_queue": queue_name(settings.worker_group),
        "task_acks_late": False,
        "worker_prefetch_multiplier": 1,
        # a worker takes a message only when it has a free slot: it holds none it cannot run
        # yet, so a lost broker connection or a dead worker takes no waiting job with it,
        # and no job waits behind a busy worker while another is idle
        "worker_disable_prefetch": True,
        # a worker waits for its broker as long as it takes (Celery gives up after 100 tries)
        "broker_connection_max_retries": None,
        "worker_hijack_root_logger": False,
        "task_serializer": "json",
        # a broker that does not answer must not hang an API request: the job is in the
        # database and the reaper sends it again
        "broker_connection_timeout": CONNECT_TIMEOUT,
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0,
                                      "interval_step": 0.2, "interval_max": 0.5},
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        # events, so Flower shows tasks as they run (off by default, as in Celery: three
        # Redis messages per job that nobody reads without Flower)
        "worker_send_task_events": settings.celery_events,
        "task_send_sent_event": settings.celery_events,
    }
    if url.startswith("rediss://"):
        # without ssl_cert_reqs kombu would take any certificate: verify the server, as
        # redis-py does (ssl_* options in the URL take precedence over this)
        config["broker_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    return config


def require_broker(settings: Settings) -> None:
    """Fail with a clear message when no broker is configured."""
    if not settings.effective_redis_url:
        from smacommon.errors import ConfigurationError

        raise ConfigurationError("SMA_REDIS_URL is not set: point it at a Redis server "
                                 "(`sma up` starts one for you, and `sma worker` on its host "
                                 "finds that one in the data folder).")


def producer_app() -> Celery:
    """A send-only Celery app, built once per process."""
    global _producer_app
    with _lock:
        if _producer_app is None:
            require_broker(get_settings())
            app = Celery("sma-producer", set_as_current=False)
            app.conf.update(celery_config(get_settings()))
            _producer_app = app
        return _producer_app


def reset_producer() -> None:
    """Forget the producer (after the settings changed, e.g. in tests)."""
    global _producer_app
    with _lock:
        _producer_app = None
    reset_publisher()


def enqueue_job(job_id: str, worker_group: str) -> None:
    """Send the run task for `job_id` to the queue of its worker group (ValueError for a
    group no queue may carry: the reaper ends such a job)."""
    enqueue_jobs([(job_id, worker_group)])


def enqueue_jobs(jobs: list[tuple[str, str]]) -> None:
    """Send the run task of each (job id, worker group) in one round trip to the broker
    (ValueError, before anything is sent, for a group no queue may carry)."""
    routed = [(job_id, queue_name(group)) for job_id, group in jobs]
    settings = get_settings()
    if settings.celery_events:
        app = producer_app()
        for job_id, queue in routed:
            app.send_task(RUN_JOB_TASK, args=[job_id], queue=queue)
        return
    publisher(settings, RUN_JOB_TASK, check=require_broker).publish(routed)


# kombu's own keys in the Redis database and the type each must have; an older sma sent
# jobs of a group named after one of them there (LPUSH made a list), and the worker then
# stopped on WRONGTYPE at every start
_KOMBU_KEYS = {"unacked": b"hash", "unacked_index": b"zset", "unacked_mutex": b"string"}
_BINDINGS = "_kombu.binding.*"


def repair_broker_keys(settings: Settings) -> list[str]:
    """Remove kombu's keys that hold the wrong type (sma's messages pushed there by an older
    version); the names removed. What they held were messages of jobs in the database,
    which the reaper sends again. A broker that does not answer is left to Celery's retry."""
    import redis

    client = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=5,
                                  socket_connect_timeout=5)
    removed = []
    try:
        wanted = dict(_KOMBU_KEYS)
        wanted.update((key.decode(), b"set") for key in client.scan_iter(_BINDINGS, count=1000))
        for key, kind in wanted.items():
            found = client.type(key)
            if found not in (b"none", kind):
                client.delete(key)
                removed.append(key)
    except redis.RedisError as exc:
        log.warning("could not check the broker's own keys (%s); going on", exc)
    finally:
        client.close()
    for key in removed:
        log.warning("removed broker key %r: it held another type than kombu's (left by an "
                    "older sma for a worker group of that name); the reaper sends its jobs "
                    "again", key)
    return removed
