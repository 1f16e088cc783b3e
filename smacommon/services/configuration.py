"""Admin configuration: job retention and the records a job may write, set through the API
and read by beat's purge and by workers (who cache it a few seconds)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from smacommon.db import read_connection, utcnow
from smacommon.models.config import ServiceSetting
from smacommon.services.audit import record
from smacommon.settings import Settings

KEYS = ("job_retention_days", "max_job_records")
_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def defaults(settings: Settings) -> dict[str, Any]:
    """What applies when nobody set a value: SMA_JOB_RETENTION_DAYS, and no record limit."""
    return {"job_retention_days": settings.job_retention_days, "max_job_records": None}


def get_configuration(session: Session, settings: Settings) -> dict[str, Any]:
    values = defaults(settings)
    for row in session.scalars(select(ServiceSetting).where(ServiceSetting.key.in_(KEYS))):
        values[row.key] = row.value
    return values


def set_configuration(session: Session, settings: Settings, changes: dict[str, Any],
                      actor: str) -> dict[str, Any]:
    for key, value in changes.items():
        row = session.get(ServiceSetting, key)
        if row is None:
            session.add(ServiceSetting(key=key, value=value, modified_at=utcnow(),
                                       modified_by=actor))
        else:
            row.value, row.modified_at, row.modified_by = value, utcnow(), actor
    session.flush()
    record(session, "configuration.update", "/api/v1/admin/configuration", **changes)
    _cache.clear()
    return get_configuration(session, settings)


def current(engine: Engine, settings: Settings) -> dict[str, Any]:
    """The configuration for a worker or beat, read at most every SMA_CONFIG_CACHE_SECONDS."""
    key = str(engine.url)
    hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < settings.config_cache_seconds:
        return hit[1]
    values = defaults(settings)
    with read_connection(engine) as conn:
        for name, value in conn.execute(select(ServiceSetting.key, ServiceSetting.value)
                                        .where(ServiceSetting.key.in_(KEYS))):
            values[name] = value
    _cache[key] = (time.monotonic(), values)
    return values
