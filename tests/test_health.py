"""Liveness and readiness: the database, Redis and a live worker."""

from __future__ import annotations

from smacommon.embedded_redis import EmbeddedRedis, free_port
from smacommon.settings import load_settings


def test_liveness(client):
    assert client.get("/health").get_json() == {"status": "ok"}


def test_readiness_follows_redis_and_workers(services, tmp_path, worker):
    from smaweb import create_app

    redis_server = EmbeddedRedis(tmp_path / "redis", persist=False, port=free_port()).start()
    try:
        app = create_app({"TESTING": True,
                          "SMA_SETTINGS": load_settings(redis_url=redis_server.url)})
        client = app.test_client()
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.get_json()
        body = ready.get_json()
        assert body["status"] == "ready" and body["checks"]["workers"]["online"] >= 1
        redis_server.stop()
        down = client.get("/health/ready")
        assert down.status_code == 503
        assert down.get_json()["checks"]["redis"]["ok"] is False
        assert down.get_json()["checks"]["database"]["ok"] is True
        redis_server.start()
        assert client.get("/health/ready").status_code == 200
    finally:
        redis_server.stop()


def test_readiness_needs_a_worker(services, tmp_path):
    """A database no worker has ever registered in: the session's workers, which heartbeat
    every second into the tests' own database, cannot make it ready by a race."""
    from smacommon.migrate import upgrade
    from smaweb import create_app

    empty = f"sqlite:///{tmp_path / 'no-workers.db'}"
    upgrade(empty)
    app = create_app({"TESTING": True, "SMA_SETTINGS": load_settings(database_url=empty)})
    body = app.test_client().get("/health/ready")
    assert body.status_code == 503
    assert body.get_json()["checks"]["workers"] == {
        "ok": False, "online": 0, "error": "no worker sent a heartbeat lately"}
