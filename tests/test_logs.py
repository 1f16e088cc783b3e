"""Structured logs: a JSON line per request and per job transition."""

from __future__ import annotations

import json
import logging
import time

from smacommon.logs import JsonFormatter, TextFormatter


def test_request_lines_mask_webhook_tokens(client, api, caplog):
    caplog.set_level(logging.INFO, logger="sma.request")
    api.get("/api/v1/runbooks")
    client.post("/api/v1/webhooks/invoke/secret-token-value", data="{}")
    records = [r for r in caplog.records if r.name == "sma.request"]
    listed = next(r for r in records if r.path == "/api/v1/runbooks")
    assert listed.method == "GET" and listed.status == 200 and listed.principal == "admin"
    assert listed.endpoint == "/api/v1/runbooks" and listed.ms >= 0
    line = json.loads(JsonFormatter().format(listed))
    assert line["event"] == "request" and line["status"] == 200 and line["level"] == "info"
    assert "time" in line and line["path"] == "/api/v1/runbooks"
    hook = next(r for r in records if "/webhooks/invoke/" in r.path)
    assert hook.path == "/api/v1/webhooks/invoke/***"
    assert "secret-token-value" not in caplog.text
    assert "status=200" in TextFormatter().format(listed)


def test_worker_logs_each_job_transition_as_json(api, worker):
    rb = api.create_runbook(name="logged")
    job = api.start(rb["name"])
    assert api.wait(job["id"])["status"] == "Completed"
    deadline = time.monotonic() + 10
    while True:
        lines = []
        for raw in worker.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        mine = [x for x in lines if x.get("event") == "job_transition"
                and x.get("job_id") == job["id"]]
        if len(mine) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [x["status"] for x in mine] == ["Activating", "Running", "Completed"]
    assert all(x["runbook"] == "logged" and x["actor"].startswith("worker:") for x in mine)
