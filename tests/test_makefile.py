"""The Makefile, read through `make -n` (what make would run, nothing run): what `make run`
passes to `sma up` and installs, what `make test` adds, on which databases it runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from smacommon.embedded_redis import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

# what could reach make from outside and change its answer
OUTSIDE = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "HOST", "PORT", "DATA_DIR", "WORKERS",
           "SMA_TEST_DATABASE_URL")


def make_n(*args: str, env: dict[str, str] | None = None) -> list[str]:
    base = {k: v for k, v in os.environ.items() if k not in OUTSIDE}
    proc = subprocess.run(["make", "-n", *args], cwd=ROOT, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def sma_up_line(lines: list[str]) -> str:
    return next(line for line in lines if "/bin/sma up" in line)


def test_make_run_passes_host_port_data_dir_and_workers_to_sma_up():
    lines = make_n("run", "PORT=9000", "HOST=0.0.0.0", "DATA_DIR=/srv/sma data", "WORKERS=4")
    assert sma_up_line(lines) == ('.venv/bin/sma up --host "0.0.0.0" --port "9000" '
                                  '--data-dir "/srv/sma data" --workers "4"')
    assert sma_up_line(make_n("run", "PORT=9000")) == '.venv/bin/sma up --port "9000"'
    assert sma_up_line(make_n("run")).rstrip() == ".venv/bin/sma up"


def test_make_run_leaves_a_port_or_host_exported_by_something_else_alone():
    lines = make_n("run", env={"PORT": "5000", "HOST": "buildbox"})
    assert sma_up_line(lines).rstrip() == ".venv/bin/sma up"


def test_make_run_installs_only_what_running_needs_and_waits_for_the_dpkg_lock():
    run = "\n".join(make_n("run"))
    assert "redis-server" in run and "bubblewrap" in run and "useradd" in run
    assert "chromium" not in run and "docker-compose" not in run
    test = "\n".join(make_n("test"))
    assert "chromium" in test and "docker-compose" in test
    said = re.sub(r'echo "[^"]*"', "", run + "\n" + test)  # messages, not commands
    calls = re.findall(r"apt-get [^;\n]*install[^;\n]*", said)
    assert len(calls) >= 3  # run's, test's and compose-check's
    for call in calls:
        assert "-o DPkg::Lock::Timeout=120" in call, call


def test_pip_install_filters_only_setuptools_compat_editable_notice():
    lines = make_n("-W", "pyproject.toml", "deps")  # as if pyproject changed: pip runs
    at = next(i for i, line in enumerate(lines) if "editable_mode=compat" in line)
    assert lines[at - 1] == 'PYTHONWARNINGS="ignore:Compat editable installs:UserWarning" \\'


def _postgres_choice(lines: list[str]) -> str:
    return next(line for line in lines if line.startswith("pg=")).split(";", 1)[0]


def test_make_test_finds_the_local_postgresql_unless_told():
    assert _postgres_choice(make_n("test")) == "pg='auto'"
    assert _postgres_choice(make_n("test", env={"SMA_TEST_DATABASE_URL": ""})) == "pg=''"
    assert _postgres_choice(make_n("test", "SMA_TEST_DATABASE_URL=")) == "pg=''"
    url = "postgresql://ci@db.example:5432/postgres"
    assert _postgres_choice(make_n("test", env={"SMA_TEST_DATABASE_URL": url})) == f"pg='{url}'"
    text = "\n".join(make_n("test"))
    assert "the suite passed on SQLite and on PostgreSQL" in text
    assert "the suite passed on SQLite only" in text


def test_make_tests_postgresql_probe_says_no_where_none_answers():
    """The probe `make test` runs, pointed at a port where nothing listens: no PostgreSQL."""
    probe = next(re.search(r'-c "([^"]+)"', line).group(1) for line in make_n("test")
                 if "psycopg.connect" in line)
    assert "127.0.0.1:5432" in probe
    nowhere = probe.replace("127.0.0.1:5432", f"127.0.0.1:{free_port()}")
    assert subprocess.run([sys.executable, "-c", nowhere], capture_output=True,
                          timeout=30).returncode != 0
