"""Beat's scheduler: Celery's own, plus sma's schedules, the reaper and the retention purge.

They run in the beat process rather than as tasks on a worker, so a worker whose every
slot is busy with long jobs cannot delay a schedule or the search for lost jobs. Schedules
live in the database: every check reads what is due, so a change made through the API
counts from the next check, without restarting beat.
"""

from __future__ import annotations

import logging
import time

from celery.beat import PersistentScheduler

from smacommon.db import get_engine
from smacommon.queue import enqueue_job
from smacommon.services import configuration
from smacommon.services.retention import purge_jobs
from smacommon.services.schedules import fire_due
from smacommon.settings import get_settings
from smaworker.reaper import reap

log = logging.getLogger(__name__)
PURGE_EVERY_SECONDS = 3600.0


class SmaScheduler(PersistentScheduler):
    """`celery -A smaworker beat` uses this (beat_scheduler in the Celery settings)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sma_settings = get_settings()
        self.next_reap = 0.0
        self.next_fire_check = 0.0
        self.next_purge = time.monotonic() + 60.0

    def tick(self, *args, **kwargs) -> float:
        wait = super().tick(*args, **kwargs)
        now = time.monotonic()
        engine = get_engine(self.sma_settings.effective_database_url)
        if now >= self.next_fire_check:
            self.next_fire_check = now + self.sma_settings.schedule_check_seconds
            try:
                started = fire_due(engine, enqueue=_enqueue,
                                   heartbeat_seconds=self.sma_settings.worker_heartbeat_seconds)
                if started:
                    log.info("schedules: started %d job(s)", started)
            except Exception:
                log.exception("schedule check failed; trying again next check")
        if now >= self.next_reap:
            self.next_reap = now + self.sma_settings.reaper_interval_seconds
            try:
                done = reap(engine, self.sma_settings, _enqueue)
                if any(done.values()):
                    log.info("reaper: %s", done)
            except Exception:
                log.exception("reaper pass failed; trying again next interval")
        if now >= self.next_purge:
            self.next_purge = now + PURGE_EVERY_SECONDS
            try:
                days = configuration.current(engine, self.sma_settings)["job_retention_days"]
                done = purge_jobs(engine, days)
                if done["jobs_deleted"]:
                    log.info("retention: %s", done)
            except Exception:
                log.exception("retention purge failed")
        return min(wait, max(0.05, min(self.next_reap, self.next_fire_check)
                                 - time.monotonic()))


def _enqueue(job_id: str, group: str) -> None:
    try:
        enqueue_job(job_id, group)
    except Exception:
        log.warning("could not queue job %s (broker down?); next pass tries again", job_id)
