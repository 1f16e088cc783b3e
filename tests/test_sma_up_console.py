"""`sma up` keeps to its data folder, and its console log is for a person."""

from __future__ import annotations

import json
import queue
import re
import shutil
import time
from pathlib import Path

import pytest
import requests

from smaworker.jobsroot import jobs_root_for
from tests.test_sandbox import needs_job_user
from tests.test_sma_up import Up

pytestmark = pytest.mark.e2e

RUNBOOK = "import time\ntime.sleep(0.3)\nprint('done')\n"


def _start(tmp_path: Path, **env: str) -> tuple[Up, Path, Path]:
    """`sma up` with a HOME and an XDG_RUNTIME_DIR of its own, both empty."""
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    return Up(tmp_path / "data", env={"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime),
                                      **env}), home, runtime


def _run_job(up: Up) -> dict:
    token = up.wait_for("Admin token").rsplit(" ", 1)[-1].strip()
    up.wait_for("Press Ctrl-C")
    s = requests.Session()
    s.trust_env = False
    s.headers["Authorization"] = f"Bearer {token}"
    r = s.post(f"{up.url}/api/v1/runbooks", json={"name": "console", "runbook_type": "python",
                                                  "content": RUNBOOK})
    assert r.status_code == 201, r.text
    assert s.post(f"{up.url}/api/v1/runbooks/console/publish").status_code == 201
    job = s.post(f"{up.url}/api/v1/runbooks/console/start", json={"wait": 60}).json()
    assert job["status"] == "Completed", job
    return job


def _all_lines(up: Up) -> list[str]:
    """Every line `sma up` printed until it exited."""
    deadline = time.monotonic() + 30
    while up.proc.poll() is None or not up.lines.empty():
        try:
            up.seen.append(up.lines.get(timeout=0.5))
        except queue.Empty:
            assert time.monotonic() < deadline
    return [line.rstrip("\n") for line in up.seen]


@pytest.fixture
def cleanup(tmp_path):
    yield
    shutil.rmtree(jobs_root_for(tmp_path / "data"), ignore_errors=True)


def test_sma_up_writes_nothing_outside_its_folders_and_logs_a_job_in_two_lines(tmp_path,
                                                                                cleanup):
    up, home, runtime = _start(tmp_path)
    try:
        job = _run_job(up)
        short = job["id"][:8]
        up.wait_for(f"job console {short} Completed in ")
        assert up.interrupt() == 0
        lines = _all_lines(up)
    finally:
        up.kill()
    mine = [line for line in lines if f"job console {short}" in line]
    assert len(mine) == 2, lines
    assert mine[0].endswith(f"INFO job console {short} started")
    assert re.search(rf"INFO job console {short} Completed in \d+\.\d\d s$", mine[1]), mine
    # no Celery line per task with its data, no request lines, no banners
    assert not [line for line in lines if "data={" in line or "sma.run_job[" in line
                or "sma.request" in line or "-------------- [queues]" in line]
    assert not [line for line in lines if "SecurityWarning" in line or "superuser" in line]
    token_at = next(i for i, line in enumerate(lines) if line.startswith("Admin token"))
    assert token_at < 15, lines[:token_at]  # in sight at the top, not under banners
    # nothing in HOME nor in XDG_RUNTIME_DIR (no gunicornc control socket anywhere)
    assert list(home.iterdir()) == [] and list(runtime.iterdir()) == []
    assert not list(tmp_path.rglob("gunicorn.ctl"))


@needs_job_user
def test_a_root_worker_says_once_who_runs_jobs(tmp_path, cleanup):
    up, _, _ = _start(tmp_path)
    try:
        up.wait_for("Press Ctrl-C")
        if not any("celery@" in line for line in up.seen):  # ready: before or after that
            up.wait_for("celery@")
        assert up.interrupt() == 0
        lines = _all_lines(up)
    finally:
        up.kill()
    said = [line for line in lines if "the worker runs as root only to start jobs" in line]
    assert len(said) == 1, lines
    assert f"{jobs_root_for(tmp_path / 'data')}/run" in said[0]
    assert "in bubblewrap" in said[0] or "without bubblewrap" in said[0]
    assert not [line for line in lines if "superuser" in line]


def test_sma_up_logs_json_when_asked(tmp_path, cleanup):
    up, home, _ = _start(tmp_path, SMA_LOG_FORMAT="json")
    try:
        job = _run_job(up)
        deadline = time.monotonic() + 30
        while not any("Completed" in line and job["id"] in line for line in up.seen):
            assert time.monotonic() < deadline, "".join(up.seen)[-3000:]
            try:
                up.seen.append(up.lines.get(timeout=0.5))
            except queue.Empty:
                pass
        assert up.interrupt() == 0
        lines = _all_lines(up)
    finally:
        up.kill()
    records = []
    for line in lines:
        if line.startswith("{"):
            records.append(json.loads(line))  # every structured line is whole JSON
    moves = [r for r in records if r.get("event") == "job_transition"
             and r["job_id"] == job["id"]]
    assert [r["status"] for r in moves] == ["Activating", "Running", "Completed"]
    assert moves[-1]["runbook"] == "console" and moves[-1]["seconds"] >= 0.3
    # the JSON log keeps what the console leaves out: Celery's task lines, the requests
    assert any(r["logger"] == "celery.app.trace" for r in records)
    assert any(r.get("event") == "request" for r in records)
    assert list(home.iterdir()) == []
