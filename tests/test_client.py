"""The Python client against the live service: typed results, one error type, pages, retries."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from smacli.client import Job, Runbook, SmaApiError, SmaClient, Variable
from smacommon.embedded_redis import free_port
from smaweb import gunicorn_conf
from tests.conftest import ADMIN_TOKEN, ROOT


@pytest.fixture
def sma(services):
    return SmaClient(services["api_url"], ADMIN_TOKEN)


def test_typed_results_and_one_error_type(sma, worker):
    rb = sma.create_runbook("typed", "python", "def main(n: int):\n    print(n * 2)\n")
    assert isinstance(rb, Runbook) and rb.name == "typed" and rb.has_draft is True
    assert sma.publish_runbook("typed").number == 1
    job = sma.start_runbook("typed", {"n": 21}, wait=30)
    assert isinstance(job, Job) and job.status == "Completed" and job.finished
    assert sma.job_output(job.id) == "42\n"
    assert [r.text for r in sma.job_records(job.id, streams=["Output"])] == ["42"]
    events = list(sma.job_events(job.id))
    assert events[0].record.text == "42" and events[-1].status.status == "Completed"
    with pytest.raises(SmaApiError) as bad:
        sma.start_runbook("typed", {"n": "many"})
    assert bad.value.status == 400 and "n must be an integer" in bad.value.message
    with pytest.raises(SmaApiError) as missing:
        sma.get_runbook("nope")
    assert missing.value.status == 404 and "nope" in missing.value.message


def test_lists_are_iterators_over_pages(sma):
    for i in range(120):
        sma.create_variable(f"v{i:03d}", i)
    names = [v.name for v in sma.variables()]
    assert len(names) == 120 and len(set(names)) == 120
    assert all(isinstance(v, Variable) for v in sma.variables())
    first = next(iter(sma.variables()))
    assert first["name"] == first.name  # the raw JSON is there too


def test_retries_only_what_is_safe_to_repeat(services):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sma = SmaClient(url, ADMIN_TOKEN, retries=8)
    began = time.monotonic()
    with pytest.raises(SmaApiError) as refused:
        sma.create_runbook("not-sent-twice", "python", "print(1)\n")
    assert refused.value.status == 0 and "Cannot reach sma" in refused.value.message
    assert time.monotonic() - began < 1.0  # a POST is not retried
    env = {**os.environ, **services["env"]}
    holder: dict = {}

    def start_late():
        time.sleep(1.0)
        holder["proc"] = subprocess.Popen(
            [*gunicorn_conf.command(f"127.0.0.1:{port}"), "--log-level", "warning"], env=env,
            cwd=ROOT, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    starter = threading.Thread(target=start_late)
    starter.start()
    try:
        assert list(sma.runbooks()) == []  # a GET waits for the service to come up
    finally:
        starter.join(10)
        proc = holder.get("proc")
        if proc is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
