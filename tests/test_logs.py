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


def test_a_transition_is_logged_only_when_its_transaction_commits(api, services, caplog):
    """A rolled-back move (a worker that retries after an outage, a failed request) leaves
    no line saying the job moved."""
    import uuid

    from sqlalchemy.orm import Session

    from smacommon.db import get_engine
    from smacommon.services.jobs import transition
    from smacommon.states import JobStatus

    rb = api.create_runbook()
    job_id = uuid.UUID(api.start(rb["name"], worker_group="nobody-serves-this")["id"])
    engine = get_engine(services["database_url"])
    caplog.set_level(logging.INFO, logger="smacommon.services.jobs")

    def logged():
        return [r.status for r in caplog.records if getattr(r, "event", "") == "job_transition"
                and r.job_id == str(job_id)]

    with engine.connect() as conn:
        with conn.begin() as tx:
            assert transition(conn, job_id, JobStatus.STOPPED, actor="test")
            tx.rollback()
    with Session(engine) as session:
        assert transition(session, job_id, JobStatus.STOPPED, actor="test")
        session.rollback()
    assert logged() == []
    with Session(engine) as session, session.begin():
        assert transition(session, job_id, JobStatus.STOPPED, actor="test")
        assert logged() == []  # not before the commit
    assert logged() == ["Stopped"]
    assert api.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "Stopped"


def _record(name: str, level: int = logging.INFO, msg: str = "m", **extra) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def test_the_text_log_keeps_a_line_per_job_start_and_end_warnings_and_errors():
    from smacommon.logs import ConsoleFilter

    keep = ConsoleFilter().filter
    job = {"event": "job_transition", "job_id": "1a2b3c4d-0000", "runbook": "nightly"}
    assert [s for s in ("Activating", "Running", "Stopping", "Completed", "Failed", "Stopped",
                        "Suspending", "Suspended", "Resuming")
            if keep(_record("smacommon.services.jobs", status=s, **job))] == [
        "Running", "Completed", "Failed", "Stopped", "Suspended"]
    assert not keep(_record("celery.app.trace", msg="Task sma.run_job[x] succeeded"))
    assert not keep(_record("celery.worker.strategy", msg="Task sma.run_job[x] received"))
    assert keep(_record("celery.app.trace", logging.ERROR, msg="Task sma.run_job[x] raised"))
    assert not keep(_record("sma.request", event="request", status=200))
    assert keep(_record("sma.request", event="request", status=503))
    assert keep(_record("smaworker.registry", msg="worker registered"))
    assert keep(_record("smaworker.sandbox", logging.WARNING, msg="not root"))


def test_a_job_line_names_runbook_short_id_status_and_duration():
    from smacommon.logs import TextFormatter

    fmt = TextFormatter().format
    job = {"event": "job_transition", "job_id": "1a2b3c4d-5e6f", "runbook": "nightly"}
    assert fmt(_record("j", status="Running", **job)).endswith(
        " INFO job nightly 1a2b3c4d started")
    for seconds, said in ((0.1234, "0.12 s"), (42.04, "42.0 s"), (185, "3 min 5 s"),
                          (8045, "2 h 14 min")):
        assert fmt(_record("j", status="Completed", seconds=seconds, **job)).endswith(
            f" INFO job nightly 1a2b3c4d Completed in {said}")
    assert fmt(_record("j", status="Failed", **job)).endswith(" job nightly 1a2b3c4d Failed")


def test_sma_logs_configure_puts_the_console_filter_on_text_handlers_only():
    from smacommon import logs

    handler = logging.StreamHandler()
    logs.configure(fmt="text", handlers=[handler])
    logs.configure(fmt="text", handlers=[handler])  # once, however often configured
    assert sum(isinstance(f, logs.ConsoleFilter) for f in handler.filters) == 1
    logs.configure(fmt="json", handlers=[handler])
    assert not handler.filters
