"""Workers register themselves (group, engines, concurrency, version) and keep a heartbeat."""

from __future__ import annotations

import logging
import time
from importlib.metadata import PackageNotFoundError, version

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from smacommon.db import is_transient, utcnow
from smacommon.models import Worker
from smacommon.outages import once_more_if_cut
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


def heartbeat_forever(engine: Engine, name: str, group: str, concurrency: int,
                      every: float) -> None:
    """Refresh the heartbeat; a row removed meanwhile (purged as lost) is written again."""
    failing = False
    while True:
        time.sleep(every)
        try:
            found = once_more_if_cut(lambda: _beat(engine, name))
            if not found:
                register(engine, name, group, concurrency)
            failing = False
        except Exception as exc:
            transient = is_transient(exc)
            if not (failing and transient):  # an outage is said once, not every beat
                log.warning("heartbeat of worker %s failed: %s", name,
                            str(exc).splitlines()[0], exc_info=not transient)
            failing = True


def _beat(engine: Engine, name: str) -> int:
    with engine.begin() as conn:
        return conn.execute(update(Worker.__table__).where(Worker.name == name)
                            .values(heartbeat_at=utcnow())).rowcount
