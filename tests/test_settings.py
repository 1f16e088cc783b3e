"""Settings: one validated object; a bad value names the variable to fix."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from smacommon.embedded_redis import free_port
from smacommon.errors import ConfigurationError
from smacommon.settings import load_settings


@pytest.mark.parametrize("var, value", [
    ("SMA_JOB_OUTPUT_LIMIT", "lots"),
    ("SMA_JOB_OUTPUT_LIMIT", "10"),
    ("SMA_DATABASE_URL", "just-a-path.db"),
    ("SMA_REDIS_URL", "http://localhost:6379"),
    ("SMA_REDIS_URL", "redis+socket:///run/redis.sock"),
    ("SMA_REDIS_URL", "unix://"),
    ("SMA_REDIS_URL", "rediss://h:6380/0?ssl_cert_reqs=CERT_REQUIRED"),
    ("SMA_REDIS_URL", "redis://h:6379/0?db=first"),
    ("SMA_WORKER_GROUP", "has space"),
    ("SMA_STREAM_BATCH_MS", "0"),
    ("SMA_TRUSTED_PROXIES", "yes"),
    ("SMA_TRUSTED_PROXIES", "-1"),
    ("SMA_TRUSTED_PROXIES", "11"),
    ("SMA_ADMIN_TOKEN", "admin"),
    ("SMA_ADMIN_TOKEN", "x" * 15),
    ("SMA_SECRET_KEY", "secret"),
    ("SMA_WORKER_NAME", "."),
    ("SMA_WORKER_NAME", ".."),
    ("SMA_HEADER_TIMEOUT_SECONDS", "0"),
    ("SMA_MAX_CONNECTIONS_PER_ADDRESS", "-1"),
    ("SMA_SHUTDOWN_GRACE_SECONDS", "-1"),
    ("SMA_SHUTDOWN_GRACE_SECONDS", "soon"),
    ("SMA_WARM_PYTHON", "perhaps"),
])
def test_bad_setting_names_the_variable(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert var in str(info.value)


def test_defaults_and_postgres_url(monkeypatch, tmp_path):
    monkeypatch.delenv("SMA_DATABASE_URL", raising=False)
    monkeypatch.delenv("SMA_JOB_OUTPUT_LIMIT", raising=False)
    monkeypatch.setenv("SMA_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'sma.db'}"
    assert settings.job_output_limit == 100 * 1024 * 1024
    monkeypatch.setenv("SMA_DATABASE_URL", "postgresql://u@h/db")
    assert load_settings().effective_database_url == "postgresql+psycopg://u@h/db"


def test_the_lease_is_three_heartbeats_unless_set(monkeypatch):
    for var in ("SMA_JOB_LEASE_SECONDS", "SMA_WORKER_HEARTBEAT_SECONDS",
                "SMA_REAPER_INTERVAL_SECONDS"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings()
    assert (settings.worker_heartbeat_seconds, settings.job_lease_seconds,
            settings.reaper_interval_seconds) == (3.0, 9.0, 2.0)
    monkeypatch.setenv("SMA_WORKER_HEARTBEAT_SECONDS", "5")
    monkeypatch.setenv("SMA_JOB_LEASE_SECONDS", "")  # as .env.example leaves it
    assert load_settings().job_lease_seconds == 15.0
    monkeypatch.setenv("SMA_JOB_LEASE_SECONDS", "40")
    assert load_settings().job_lease_seconds == 40.0
    monkeypatch.setenv("SMA_JOB_LEASE_SECONDS", "0.5")
    with pytest.raises(ConfigurationError, match="SMA_JOB_LEASE_SECONDS"):
        load_settings()


def test_cli_reports_bad_setting_without_traceback(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SMA_DATA_DIR": str(tmp_path),
           "SMA_JOB_OUTPUT_LIMIT": "lots", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "smacli.main", "db", "upgrade"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "SMA_JOB_OUTPUT_LIMIT" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_db_upgrade_command(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SMA_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "smacli.main", "db", "upgrade"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout
    assert (tmp_path / "sma.db").exists()
    again = subprocess.run([sys.executable, "-m", "smacli.main", "db", "upgrade"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0


def test_cli_usage_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "smacli.main", "frobnicate"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_secrets_of_16_characters_or_empty_are_accepted():
    assert load_settings(admin_token="x" * 16, secret_key="y" * 16).admin_token == "x" * 16
    empty = load_settings(admin_token="", secret_key="")  # sma makes them
    assert (empty.admin_token, empty.secret_key) == ("", "")


@pytest.mark.parametrize("argv, var", [
    (["up", "--port", "FREE"], "SMA_ADMIN_TOKEN"),  # a free port: the settings refuse
    (["worker"], "SMA_SECRET_KEY"),
    (["-m", "celery", "-A", "smaworker", "worker"], "SMA_ADMIN_TOKEN"),
    (["-m", "celery", "-A", "smaworker", "beat"], "SMA_SECRET_KEY"),
])
def test_weak_secrets_are_refused_at_start_in_one_line(tmp_path, argv, var):
    env = {"PATH": "/usr/bin:/bin", "SMA_DATA_DIR": str(tmp_path / "data"),
           "HOME": str(tmp_path), "SMA_REDIS_URL": "redis://127.0.0.1:1/0", var: "password1"}
    argv = [str(free_port()) if arg == "FREE" else arg for arg in argv]
    command = argv if argv[0] == "-m" else ["-m", "smacli.main", *argv]
    proc = subprocess.run([sys.executable, *command], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip() == (
        f"sma: Invalid setting: {var}: Value error, must be at least 16 characters (make "
        "one with `openssl rand -hex 32`), or empty to have sma make one")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("value, says", [
    ("redis+socket:///run/redis.sock", "unix://[:PASSWORD@]/path/redis.sock"),
    ("unix://", "needs the socket's path"),
    ("rediss://h/0?ssl_cert_reqs=CERT_NONE", "ssl_cert_reqs must be none, optional or required"),
])
def test_bad_redis_url_says_what_to_write(monkeypatch, value, says):
    monkeypatch.setenv("SMA_REDIS_URL", value)
    with pytest.raises(ConfigurationError, match=re.escape(says)):
        load_settings()


@pytest.mark.parametrize("value", [
    "redis://:pass@h:6379/0", "redis://user:p%40ss@h:6379/1", "unix:///run/r.sock?db=0",
    "unix://:pw@/run/r.sock?db=1&password=pw", "rediss://u:p@h:6380/0?ssl_cert_reqs=required"
    "&ssl_ca_certs=/etc/ssl/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem",
])
def test_redis_urls_redis_py_takes(monkeypatch, value):
    monkeypatch.setenv("SMA_REDIS_URL", value)
    assert load_settings().effective_redis_url == value
