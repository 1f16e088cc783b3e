"""A runbook suspends itself with a `suspend` record (PowerShell's Suspend-Workflow), then
resumes from its checkpoint like a job a user suspended."""

from __future__ import annotations

import pytest

from smaworker.lines import parse_record

pytestmark = pytest.mark.e2e

# what Suspend-Workflow -Data 'waiting' writes on the record channel: a checkpoint, then a
# suspend record (the same protocol from Python, so that it runs where pwsh is absent)
SUSPENDS = (
    "import json, os, sys, time, smarunbook\n"
    "step = smarunbook.last_checkpoint()\n"
    "if step is None:\n"
    "    print('before', flush=True)\n"
    "    smarunbook.checkpoint('waiting')\n"
    "    record = '\\x1e' + os.environ['SMA_RECORD_TAG'] + json.dumps({'type': 'suspend'})\n"
    "    os.write(int(os.environ['SMA_RECORD_FD']), (record + '\\n').encode())\n"
    "    time.sleep(60)  # never gets past this: the worker ends the run\n"
    "    print('not suspended', flush=True)\n"
    "print('after', step)\n")


def _output(api, job_id: str) -> list[str]:
    return api.get(f"/api/v1/jobs/{job_id}/output").get_data(as_text=True).splitlines()


def test_a_suspend_record_suspends_the_job_until_it_is_resumed(api, worker):
    rb = api.create_runbook(content=SUSPENDS)
    job = api.start(rb["name"])
    suspended = api.wait(job["id"], timeout=30)
    assert suspended["status"] == "Suspended", suspended
    assert suspended["has_checkpoint"] is True
    reason = "Suspended by its runbook; resumed, it runs again from the start with its last " \
             "checkpoint."
    assert suspended["status_reason"] == reason
    assert [e["status"] for e in suspended["status_history"]][-2:] == ["Running", "Suspended"]
    assert _output(api, job["id"]) == ["before"]
    assert [(r["stream"], r["text"]) for r in api.records(job["id"])][-1] == ("Warning", reason)

    assert api.post(f"/api/v1/jobs/{job['id']}/resume").status_code == 202
    done = api.wait(job["id"], timeout=30)
    assert done["status"] == "Completed", done
    lines = [line for line in _output(api, job["id"]) if not line.startswith("--- Attempt")]
    assert lines == ["before", "after waiting"]  # the second run started from the checkpoint


def test_a_suspend_record_is_no_output_line() -> None:
    assert parse_record(b'{"type": "suspend"}') == {"type": "suspend"}
