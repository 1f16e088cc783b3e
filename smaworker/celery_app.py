"""The Celery app of the runbook workers: settings from smacommon, no Flask."""

from __future__ import annotations

import logging
import os
import socket
import threading
import warnings

from celery import Celery, signals
from celery.exceptions import SecurityWarning

from smacommon.db import dispose_engines, get_engine
from smacommon.errors import ConfigurationError
from smacommon.queue import celery_config, repair_broker_keys, require_broker
from smacommon.settings import get_settings
from smacommon.workergroups import queue_name
from smaworker import shutdown
from smaworker.broker import ResendOnConnect, patch_kombu

log = logging.getLogger(__name__)
# sma's worker runs as root by design, to start each job as SMA_JOB_USER in bubblewrap
# (smaworker/sandbox.py); it says so itself, once, when ready (_say_who_runs_jobs)
warnings.filterwarnings("ignore", category=SecurityWarning,
                        message="You're running the worker with superuser privileges")

try:
    settings = get_settings()
except ConfigurationError as exc:  # one line, not the traceback of Celery's app loading
    raise SystemExit(f"sma: {exc.message}") from None
app = Celery("smaworker", include=["smaworker.tasks"])
# a worker consumes the queue of its group, SMA_WORKER_GROUP (celery_config's default queue)
app.conf.update(celery_config(settings))
app.conf.beat_scheduler = "smaworker.beat:SmaScheduler"
# a broker restart: survived (patch_kombu at worker_init), reconnected within seconds, what
# it lost sent again at once
app.conf.worker_consumer = "smaworker.broker:Consumer"
app.steps["consumer"].add(ResendOnConnect)

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
def _patch_kombu(**_: object) -> None:
    patch_kombu()


@signals.worker_init.connect
def _check_queues(sender=None, **_: object) -> None:
    # `celery worker -Q linux` would consume a queue sma no longer sends to: the group is
    # SMA_WORKER_GROUP, and its queue is derived from it in one place
    wanted = queue_name(settings.worker_group)
    queues = sorted(getattr(sender.app.amqp.queues, "consume_from", None) or []) \
        if sender is not None else []
    if queues and queues != [wanted]:
        raise SystemExit(
            f"sma worker: this worker would consume {', '.join(queues)}; serve a worker "
            f"group with SMA_WORKER_GROUP (sma worker --group NAME), not celery -Q: the "
            f"queue of group {settings.worker_group!r} is {wanted!r}")


@signals.worker_init.connect
def _check_sandbox(**_: object) -> None:
    # who jobs run as, checked before the first job (a missing SMA_JOB_USER stops the
    # worker here); the forked pool processes inherit the result
    from smaworker.environments import current_environments
    from smaworker.sandbox import current_sandbox

    try:
        sandbox = current_sandbox(settings)
        if settings.api_ca_file:  # here, so the pool processes inherit the one copy
            sandbox.readable_copy(settings.api_ca_file)
        current_environments(settings, sandbox)  # where runbook environments live
    except ConfigurationError as exc:
        raise SystemExit(f"sma worker: {exc.message}") from None  # Celery logs and goes on
    except OSError as exc:
        raise SystemExit(f"sma worker: SMA_API_CA_FILE: {exc.strerror}: {exc.filename}"
                         ) from None


@signals.worker_init.connect
@signals.beat_init.connect
def _repair_broker(**_: object) -> None:
    # after the checks that may refuse to start: a worker that does not start changes nothing
    repair_broker_keys(settings)


@signals.worker_shutdown.connect
def _remove_copies(**_: object) -> None:
    from smaworker.cafile import remove_copies

    remove_copies()


@signals.worker_process_init.connect
def _pool_process_init(**_: object) -> None:
    from smaworker.lease import limit_idle_transactions

    # a forked pool process must not share its parent's database connections
    dispose_engines()
    limit_idle_transactions(settings.job_lease_seconds)  # where jobs run: see smaworker.lease
    if settings.warm_python:  # this process's first Python job finds its host warm
        from smaworker import warm
        from smaworker.sandbox import current_sandbox

        warm.prepare(settings, current_sandbox(settings))


@signals.worker_process_shutdown.connect
def _pool_process_shutdown(**_: object) -> None:
    from smaworker import warm

    warm.release()  # its process, folder and uid; bubblewrap ends it with us in any case


@signals.worker_process_shutdown.connect
def _flush_metrics(**_: object) -> None:
    # a pool process ends with os._exit, past atexit: what its last jobs counted goes now
    from smacommon import metrics

    metrics.flush()


_stopping = threading.Event()  # set in the main process when the worker is told to stop


@signals.worker_ready.connect
def _register(sender=None, **_: object) -> None:
    from smacommon.queue import enqueue_job
    from smaworker.registry import register, resume_suspended

    _say_who_runs_jobs()
    concurrency = getattr(getattr(sender, "controller", None), "concurrency", None) or 1
    group = settings.worker_group  # whose queue it consumes (_check_queues)
    engine = get_engine(settings.effective_database_url)
    register(engine, worker_name(), group, concurrency)
    try:
        resume_suspended(engine, worker_name(), group, enqueue_job)
    except Exception as exc:  # noqa: BLE001 - the reaper resumes them in its next pass
        log.warning("worker %s could not resume the jobs suspended at a shutdown yet: %s",
                    worker_name(), str(exc).splitlines()[0])
    environments = _tidy_environments()
    thread = threading.Thread(target=_heartbeat,
                              args=(engine, group, concurrency, environments.built),
                              name="sma-heartbeat", daemon=True)
    thread.start()


def _say_who_runs_jobs() -> None:
    # here, once logging is set up (worker_init comes before it): a root worker's jobs;
    # a worker whose jobs run as itself or as root has said so with a warning
    from smaworker.resources import limits_said
    from smaworker.sandbox import current_sandbox

    limits_said(settings)
    sandbox = current_sandbox(settings)
    if sandbox.user is None:
        return
    uids = settings.job_uids
    log.info("the worker runs as root only to start jobs: each runs as %s%s, %s, in a folder "
             "of its own in %s", sandbox.user,
             f" (a uid of its own from {uids.start}-{uids.stop - 1})" if uids else "",
             "in bubblewrap (a PID namespace of its own)" if sandbox.bwrap
             else "without bubblewrap", sandbox.jobs_root / "run")


def _tidy_environments():
    # runbook environments unused for SMA_ENV_MAX_IDLE_DAYS go, now and every hour
    from smaworker.environments import current_environments
    from smaworker.sandbox import current_sandbox

    environments = current_environments(settings, current_sandbox(settings))
    threading.Thread(target=environments.tidy_until, args=(_stopping,),
                     name="sma-environments", daemon=True).start()
    return environments


def _heartbeat(engine, group: str, concurrency: int, environments) -> None:
    from smaworker.registry import deregister, heartbeat_until

    # the heartbeat says which runbook environments this host has built (the portal shows
    # where a runbook's is ready)
    heartbeat_until(_stopping, engine, worker_name(), group, concurrency,
                    settings.worker_heartbeat_seconds, environments)
    deregister(engine, worker_name())
    log.info("worker %s is shutting down: it takes no more jobs and has left the workers "
             "list; running jobs have %g s to end, then are suspended",
             worker_name(), settings.shutdown_grace_seconds)


@signals.worker_shutting_down.connect
def _shutting_down(how: str = "Warm", **_: object) -> None:
    # runs in the main process's signal handler (SIGTERM, SIGINT): no I/O, no lock held
    # here; the heartbeat thread deregisters, the pool processes read the deadline
    if how == "Cold" or shutdown.shutting_down():  # told again: suspend the jobs now
        shutdown.hurry()
    else:
        shutdown.begin(settings.shutdown_grace_seconds)
    _stopping.set()
