"""The Celery app of the runbook workers: settings from smacommon, no Flask."""

from __future__ import annotations

import logging
import os
import socket
import threading

from celery import Celery, signals

from smacommon.db import dispose_engines, get_engine
from smacommon.queue import celery_config, require_broker
from smacommon.settings import get_settings

log = logging.getLogger(__name__)

settings = get_settings()
app = Celery("smaworker", include=["smaworker.tasks"])
app.conf.update(celery_config(settings))
app.conf.task_default_queue = settings.worker_group
app.conf.beat_scheduler = "smaworker.beat:SmaScheduler"



# computed once in the main process, so its forked pool processes share it
WORKER_NAME = settings.worker_name or f"{socket.gethostname()}.{os.getpid()}"


def worker_name() -> str:
    """This worker's name: SMA_WORKER_NAME, else host name and main process id."""
    return WORKER_NAME


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _log_format(logger=None, **_: object) -> None:
    from smacommon import logs

    if logger is not None:
        logs.configure(fmt=settings.log_format, handlers=list(logger.handlers))


@signals.worker_init.connect
@signals.beat_init.connect
def _check_settings(**_: object) -> None:
    require_broker(settings)


@signals.worker_init.connect
def _check_sandbox(**_: object) -> None:
    # who jobs run as, checked before the first job (a missing SMA_JOB_USER stops the
    # worker here); the forked pool processes inherit the result
    from smacommon.errors import ConfigurationError
    from smaworker.sandbox import current_sandbox

    try:
        sandbox = current_sandbox(settings)
        if settings.api_ca_file:  # here, so the pool processes inherit the one copy
            sandbox.readable_copy(settings.api_ca_file)
    except ConfigurationError as exc:
        raise SystemExit(f"sma worker: {exc.message}") from None  # Celery logs and goes on
    except OSError as exc:
        raise SystemExit(f"sma worker: SMA_API_CA_FILE: {exc.strerror}: {exc.filename}"
                         ) from None
    log.info("jobs run as %s%s", sandbox.user or "the worker's user",
             ", each in its own PID namespace" if sandbox.bwrap else "")


@signals.worker_shutdown.connect
def _remove_copies(**_: object) -> None:
    from smaworker.cafile import remove_copies

    remove_copies()


@signals.worker_process_init.connect
def _pool_process_init(**_: object) -> None:
    # a forked pool process must not share its parent's database connections
    dispose_engines()


@signals.worker_ready.connect
def _register(sender=None, **_: object) -> None:
    from smaworker.registry import heartbeat_forever, register

    concurrency = getattr(getattr(sender, "controller", None), "concurrency", None) or 1
    # the group is the queue it consumes (`-Q linux` or SMA_WORKER_GROUP)
    queues = list(sender.app.amqp.queues.consume_from or []) if sender else []
    group = queues[0] if queues else settings.worker_group
    engine = get_engine(settings.effective_database_url)
    register(engine, worker_name(), group, concurrency)
    thread = threading.Thread(target=heartbeat_forever, args=(
        engine, worker_name(), group, concurrency, settings.worker_heartbeat_seconds),
        name="sma-heartbeat", daemon=True)
    thread.start()
