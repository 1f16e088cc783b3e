"""Workers register themselves (group, engines, concurrency, version) and keep a heartbeat."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from importlib.metadata import PackageNotFoundError, version

from sqlalchemy import Engine, delete, update
from sqlalchemy.orm import Session

from smacommon.db import is_transient, utcnow
from smacommon.models import Worker
from smacommon.outages import once_more_if_cut
from smacommon.services.attempts import resume_after_shutdown
from smaworker.engines import available_engines

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return version("sma")
    except PackageNotFoundError:
        return "dev"


def register(engine: Engine, name: str, group: str, concurrency: int) -> None:
    """Insert or refresh this worker's row."""
    with Session(engine) as s, s.begin():
        worker = s.get(Worker, name) or Worker(name=name)
        worker.worker_group = group
        worker.engines = available_engines()
        worker.concurrency = int(concurrency)
        worker.version = _version()
        worker.started_at = worker.heartbeat_at = utcnow()
        s.add(worker)
    log.info("worker %s registered in group %s with engines %s", name, group, available_engines())


def resume_suspended(engine: Engine, name: str, group: str,
                     enqueue: Callable[[str, str], None]) -> int:
    """A worker of `group` is online: the group's jobs suspended when their worker shut down
    resume (see `resume_after_shutdown`); how many."""
    with engine.begin() as conn:
        resumed = resume_after_shutdown(conn, group, actor=f"worker:{name}")
    for job_id in resumed:
        enqueue(job_id, group)
    if resumed:
        log.info("worker %s resumes %d job(s) suspended when their worker shut down",
                 name, len(resumed))
    return len(resumed)


def deregister(engine: Engine, name: str, tries: int = 5) -> bool:
    """Remove this worker's row (it is shutting down); False when the database did not
    answer (the row then shows the worker lost once its heartbeat is old)."""
    for attempt in range(tries):
        try:
            with engine.begin() as conn:
                conn.execute(delete(Worker.__table__).where(Worker.name == name))
            return True
        except Exception as exc:
            if not is_transient(exc) or attempt == tries - 1:
                log.warning("worker %s could not remove its registration: %s", name,
                            str(exc).splitlines()[0])
                return False
            time.sleep(0.5)
    return False


def heartbeat_until(stop: threading.Event, engine: Engine, name: str, group: str,
                    concurrency: int, every: float,
                    environments: Callable[[], list[str]] | None = None) -> None:
    """Refresh the heartbeat until `stop` is set; a row removed meanwhile (purged as lost)
    is written again. `environments` lists the runbook environments built on this host:
    written with the beat when it changed (the first beat writes it)."""
    failing = False
    written: list[str] | None = None
    while not stop.wait(every):
        try:
            built = _built(environments)
            changed = built if built != written else None
            found = once_more_if_cut(partial(_beat, engine, name, changed))
            if not found:
                register(engine, name, group, concurrency)
                found = once_more_if_cut(partial(_beat, engine, name, built))
            if found and built is not None:
                written = built
            failing = False
        except Exception as exc:
            transient = is_transient(exc)
            if not (failing and transient):  # an outage is said once, not every beat
                log.warning("heartbeat of worker %s failed: %s", name,
                            str(exc).splitlines()[0], exc_info=not transient)
            failing = True


def _built(environments: Callable[[], list[str]] | None) -> list[str] | None:
    if environments is None:
        return None
    try:
        return environments()
    except OSError as exc:  # the folder is unreadable now: say nothing new about it
        log.warning("cannot list the runbook environments: %s", exc)
        return None


def _beat(engine: Engine, name: str, environments: list[str] | None = None) -> int:
    values = {"heartbeat_at": utcnow()}
    if environments is not None:
        values["environments"] = environments
    with engine.begin() as conn:
        return conn.execute(update(Worker.__table__).where(Worker.name == name)
                            .values(**values)).rowcount
