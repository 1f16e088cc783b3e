"""/health (liveness) and /health/ready (database, Redis, a live worker), with no token."""

from __future__ import annotations

import time

import redis
from flask import current_app
from sqlalchemy import func, select, text

from smacommon.models import Worker
from smacommon.schemas.health import HealthSchema, ReadinessSchema
from smacommon.services.workers import is_online
from smaweb.extensions import SmaBlueprint, db

blp = SmaBlueprint("health", __name__, description="Liveness and readiness (no token).")


@blp.route("/health", methods=["GET"])
@blp.operation_id("getHealth")
@blp.doc(security=[])
@blp.response(200, HealthSchema)
def health():
    """The web service is up."""
    return {"status": "ok"}


@blp.route("/health/ready", methods=["GET"])
@blp.operation_id("getReadiness")
@blp.doc(security=[])
@blp.response(200, ReadinessSchema)
@blp.alt_response(503, schema=ReadinessSchema, description="Not ready: the failing checks say "
                  "why.")
def ready():
    """Ready to run jobs: the database answers, Redis answers, a worker sent a heartbeat.
    503 with the failing checks otherwise (compose and load balancers use it)."""
    settings = current_app.config["SMA_SETTINGS"]
    checks: dict[str, dict] = {}

    began = time.perf_counter()
    try:
        db.session.execute(text("SELECT 1"))
        online = db.session.scalar(select(func.count()).select_from(Worker)
                                   .where(is_online(settings.worker_heartbeat_seconds)))
        checks["database"] = {"ok": True, "ms": _ms(began)}
        checks["workers"] = {"ok": online > 0, "online": online}
        if not online:
            checks["workers"]["error"] = "no worker sent a heartbeat lately"
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready", with its reason
        db.session.rollback()
        checks["database"] = {"ok": False, "error": _short(exc)}
        checks["workers"] = {"ok": False, "error": "unknown: the database does not answer"}

    began = time.perf_counter()
    try:
        if not settings.effective_redis_url:
            raise RuntimeError("SMA_REDIS_URL is not set")
        client = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=2,
                                      socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        checks["redis"] = {"ok": True, "ms": _ms(began)}
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = {"ok": False, "error": _short(exc)}

    ok = all(c["ok"] for c in checks.values())
    return {"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503


def _ms(began: float) -> float:
    return round((time.perf_counter() - began) * 1000, 1)


def _short(exc: Exception) -> str:
    text_ = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text_[:200]
