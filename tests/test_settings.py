"""Settings: one validated object; a bad value names the variable to fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from smacommon.errors import ConfigurationError
from smacommon.settings import load_settings


@pytest.mark.parametrize("var, value", [
    ("SMA_JOB_OUTPUT_LIMIT", "lots"),
    ("SMA_JOB_OUTPUT_LIMIT", "10"),
    ("SMA_DATABASE_URL", "just-a-path.db"),
    ("SMA_REDIS_URL", "http://localhost:6379"),
    ("SMA_WORKER_GROUP", "has space"),
    ("SMA_STREAM_BATCH_MS", "0"),
    ("SMA_HEADER_TIMEOUT_SECONDS", "0"),
    ("SMA_MAX_CONNECTIONS_PER_ADDRESS", "-1"),
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
