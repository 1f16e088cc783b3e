"""docker-compose.yml: what the stack holds. `make compose-check` (part of `make test`)
validates the file with docker-compose itself, offline (no Docker engine here)."""

from __future__ import annotations

import re

import pytest
import yaml

from smacommon.settings import Settings
from tests.conftest import ROOT


@pytest.fixture
def compose():
    # the file as written: YAML anchors and merge keys resolved, ${...} left as text
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_stack_has_every_service_with_health_and_restart(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "web", "beat", "worker-default",
                             "worker-linux", "flower"}
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        assert "healthcheck" in service, name
    assert "--appendonly yes" in " ".join(services["redis"]["command"])
    assert "/health/ready" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["worker-default"]["command"][-1] == "default"
    assert services["worker-linux"]["command"][-1] == "linux"
    assert services["worker-default"]["build"]["target"] == "worker"
    for worker in ("worker-default", "worker-linux"):  # bubblewrap works in the container
        assert services[worker]["cap_add"] == ["SYS_ADMIN"]
        assert "seccomp=unconfined" in services[worker]["security_opt"]
        assert "SMA_ALLOW_UNSANDBOXED" not in services[worker]["environment"]
        # each worker keeps its runbooks' environments in a volume of its own
        assert services[worker]["environment"]["SMA_ENV_DIR"] == "/var/cache/sma/envs"
        assert services[worker]["volumes"] == [f"{worker}-envs:/var/cache/sma/envs"]
    assert set(compose["volumes"]) == {"pgdata", "redisdata", "smadata",
                                       "worker-default-envs", "worker-linux-envs"}
    env = services["web"]["environment"]
    assert env["SMA_DATABASE_URL"].startswith("postgresql://sma:")
    assert env["SMA_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")


def test_redis_wants_a_password_and_keeps_it_off_command_lines(compose):
    services = compose["services"]
    redis = services["redis"]
    assert "requirepass" in " ".join(redis["command"])
    # a config file, not `--requirepass` on argv: /proc/<pid>/cmdline is for every host user
    assert "--requirepass" not in " ".join(redis["command"])
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    for name, service in services.items():
        url = service.get("environment", {}).get("SMA_REDIS_URL") or \
            service.get("environment", {}).get("CELERY_BROKER_URL")
        if name not in ("postgres", "redis"):
            assert url and url.startswith("redis://:${REDIS_PASSWORD:?"), name
    # Flower can revoke jobs and shut workers down: it wants a login
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"].startswith("${")


def test_env_example_documents_every_setting():
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?(SMA_[A-Z_]+)=", text, re.M))
    expected = {f"SMA_{name.upper()}" for name in Settings.model_fields}
    assert expected <= documented, expected - documented


def test_worker_image_installs_powershell_the_documented_way():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "packages.microsoft.com/config/debian/12/packages-microsoft-prod.deb" in dockerfile
    assert "install -y --no-install-recommends powershell" in dockerfile
    assert "useradd --system" in dockerfile and "sma-job" in dockerfile


def test_workers_have_time_to_suspend_their_jobs_before_docker_kills_them(compose):
    from smacli.stack import SHUTDOWN_MARGIN_SECONDS

    for name in ("worker-default", "worker-linux"):
        worker = compose["services"][name]
        grace = float(worker["environment"]["SMA_SHUTDOWN_GRACE_SECONDS"])
        assert grace == 60
        period = worker["stop_grace_period"]
        assert period.endswith("s")
        assert float(period[:-1]) == grace + SHUTDOWN_MARGIN_SECONDS, name
