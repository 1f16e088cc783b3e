"""The production stack without Docker: gunicorn, beat and three Celery workers as separate
processes on PostgreSQL and Redis; 200 jobs over two groups; one worker killed mid-run."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
import requests

from smacommon.embedded_redis import free_port
from smaweb import gunicorn_conf
from tests.conftest import ADMIN_TOKEN, ROOT, end_group

pytestmark = pytest.mark.skipif(
    not os.environ.get("SMA_TEST_DATABASE_URL"),
    reason="the production stack runs on PostgreSQL (set SMA_TEST_DATABASE_URL; make test "
           "does on its PostgreSQL pass)")

RUNBOOK = ("import os, random, time\n"
           "time.sleep(random.uniform(0.1, 0.4))\n"
           "print('done', os.environ['SMA_JOB_ID'])\n")


@pytest.fixture
def web(services):
    port = free_port()
    env = {**os.environ, **services["env"], "SMA_API_URL": f"http://127.0.0.1:{port}"}
    proc = subprocess.Popen(
        [*gunicorn_conf.command(f"127.0.0.1:{port}", processes=2), "--log-level", "warning"],
        env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{url}/health", timeout=1)
            break
        except requests.RequestException:
            assert proc.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
    yield url
    end_group(proc)


def test_two_hundred_jobs_two_groups_one_worker_killed(web, processes, services):
    suffix = uuid.uuid4().hex[:6]
    default, linux = f"default-{suffix}", f"linux-{suffix}"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    env = {"SMA_API_URL": web}
    processes.worker(default, concurrency=2, env=env)
    doomed = processes.worker(linux, concurrency=2, env=env)
    processes.worker(linux, concurrency=2, env=env)
    processes.beat(env=env)
    for name, group in (("stack-default", default), ("stack-linux", linux)):
        made = http.post(f"{web}/api/v1/runbooks", json={
            "name": name, "runbook_type": "python", "content": RUNBOOK, "worker_group": group})
        assert made.status_code == 201, made.text
        assert http.post(f"{web}/api/v1/runbooks/{name}/publish").status_code == 201
    batch = http.post(f"{web}/api/v1/jobs/batch", json={"jobs": [
        {"runbook": "stack-default" if i % 2 else "stack-linux"} for i in range(200)]})
    assert batch.status_code == 201, batch.text
    ids = [j["id"] for j in batch.json()["items"]]
    assert len(ids) == 200
    # kill -9 one linux worker while it runs jobs
    deadline = time.monotonic() + 60
    while True:
        running = http.get(f"{web}/api/v1/workers").json()["items"]
        mine = next((w for w in running if w["name"] == doomed.name), None)
        if mine and mine["running_jobs"]:
            break
        assert time.monotonic() < deadline, "the doomed worker never ran a job"
        time.sleep(0.05)
    doomed.kill()
    deadline = time.monotonic() + 240
    while True:
        page = http.get(f"{web}/api/v1/jobs", params={
            "status": "New,Activating,Running,Resuming,Stopping", "limit": 1}).json()
        if not page["items"]:
            break
        assert time.monotonic() < deadline, f"jobs still active: {page['items']}"
        time.sleep(0.5)
    finished_once, resumed = 0, 0
    for job_id in ids:
        job = http.get(f"{web}/api/v1/jobs/{job_id}").json()
        assert job["status"] == "Completed", job
        history = [e["status"] for e in job["status_history"]]
        assert history.count("Completed") == 1, history  # finished once
        finished_once += 1
        resumed += job["attempt"] > 1
        out = http.get(f"{web}/api/v1/jobs/{job_id}/output").text.split()
        assert "done" in out and job_id in out  # (a killed attempt may have printed too)
    assert finished_once == 200 and resumed >= 1  # the killed worker's jobs went elsewhere
    by_group = {}
    for job_id in ids:
        job = http.get(f"{web}/api/v1/jobs/{job_id}").json()
        by_group.setdefault(job["worker_group"], set()).add(job["worker"])
    assert doomed.name not in by_group[default]
    assert len(by_group[linux]) >= 1
