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

from smacommon.db import get_engine, is_transient
from smacommon.outages import once_more_if_cut
from smacommon.queue import enqueue_job
from smacommon.services import configuration
from smacommon.services.audit import Actor
from smacommon.services.retention import purge_jobs
from smacommon.services.schedules import fire_due
from smacommon.settings import get_settings
from smaworker.lease import AFTER_OUTAGE_SECONDS
from smaworker.reaper import reap

log = logging.getLogger(__name__)
PURGE_EVERY_SECONDS = 3600.0
RETENTION = Actor("retention", "schedule")  # beat's own purge: not audited (see audit.py)


class SmaScheduler(PersistentScheduler):
    """`celery -A smaworker beat` uses this (beat_scheduler in the Celery settings)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sma_settings = get_settings()
        self.next_reap = 0.0
        self.next_fire_check = 0.0
        self.next_purge = time.monotonic() + 60.0
        self.unreachable = False  # the database did not answer the last pass

    def tick(self, *args, **kwargs) -> float:
        wait = super().tick(*args, **kwargs)
        now = time.monotonic()
        engine = get_engine(self.sma_settings.effective_database_url)
        if self.unreachable:
            self._probe(engine)  # before any pass: the reaper must not be first back
        if now >= self.next_fire_check:
            self.next_fire_check = now + self.sma_settings.schedule_check_seconds
            try:
                started = once_more_if_cut(lambda: fire_due(
                    engine, enqueue=_enqueue,
                    heartbeat_seconds=self.sma_settings.worker_heartbeat_seconds))
                if started:
                    log.info("schedules: started %d job(s)", started)
            except Exception as exc:
                self._failed("schedule check", exc)
        if now >= self.next_reap and not self.unreachable:
            self.next_reap = now + self.sma_settings.reaper_interval_seconds
            try:
                done = once_more_if_cut(lambda: reap(engine, self.sma_settings, _enqueue))
                if any(done.values()):
                    log.info("reaper: %s", done)
            except Exception as exc:
                self._failed("reaper pass", exc)
        if now >= self.next_purge:
            self.next_purge = now + PURGE_EVERY_SECONDS
            try:
                days = configuration.current(engine, self.sma_settings)["job_retention_days"]
                done = once_more_if_cut(lambda: purge_jobs(engine, days, RETENTION))
                if done["jobs_deleted"]:
                    log.info("retention: %s", done)
            except Exception as exc:
                self._failed("retention purge", exc)
        return min(wait, max(0.05, min(self.next_reap, self.next_fire_check)
                                 - time.monotonic()))

    def _failed(self, what: str, exc: Exception) -> None:
        """A pass that failed is tried again at its next time; an unreachable database is
        said once per outage, not with a traceback every second."""
        if not is_transient(exc):
            log.exception("%s failed; trying again next time", what)
        elif not self.unreachable:
            self.unreachable = True
            log.warning("%s: the database is unreachable (%s); trying again until it answers",
                        what, str(exc).splitlines()[0])

    def _probe(self, engine) -> None:
        """Whether the database answers again after an outage. Leases ran out while nobody
        could renew them: live runs renew theirs within about a second, so the reaper
        judges none for AFTER_OUTAGE_SECONDS (else it would run those jobs twice); lost
        jobs run again that much later (smaworker.lease)."""
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as exc:
            if not is_transient(exc):
                log.exception("database check failed")
            return
        self.unreachable = False
        self.next_reap = max(self.next_reap, time.monotonic() + AFTER_OUTAGE_SECONDS)
        log.warning("the database answers again; the reaper waits %s s for workers to renew "
                    "their leases", AFTER_OUTAGE_SECONDS)


def _enqueue(job_id: str, group: str) -> None:
    try:
        enqueue_job(job_id, group)
    except Exception:
        log.warning("could not queue job %s (broker down?); next pass tries again", job_id)
