"""Workers register themselves (group, engines, concurrency, version) and keep a heartbeat."""

from __future__ import annotations

import logging
import time
from importlib.metadata import PackageNotFoundError, version

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from smacommon.db import for_write, utcnow
from smacommon.models import Worker
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
        for_write(s)
        worker = s.get(Worker, name) or Worker(name=name)
        worker.worker_group = group
        worker.engines = available_engines()
        worker.concurrency = int(concurrency)
        worker.version = _version()
        worker.started_at = worker.heartbeat_at = utcnow()
        s.add(worker)
    log.info("worker %s registered in group %s with engines %s", name, group, available_engines())


def heartbeat_forever(engine: Engine, name: str, every: float) -> None:
    while True:
        time.sleep(every)
        try:
            with Session(engine) as s, s.begin():
                s.execute(update(Worker).where(Worker.name == name).values(heartbeat_at=utcnow()))
        except Exception:
            log.warning("heartbeat of worker %s failed", name, exc_info=True)
