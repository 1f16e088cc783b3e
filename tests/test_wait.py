"""Waiting for a job: `wait` in the query or the body of a start, and followers and waiters
woken by the worker's announcement of the job's end (not by the hub's database polling)."""

from __future__ import annotations

import json
import threading

import pytest

from tests.conftest import wait_for

BLOCKED = ("import os, sys, time\n"
           "print('waiting', flush=True)\n"
           "while not os.path.exists(sys.argv[1]):\n"
           "    time.sleep(0.01)\n"
           "print('done', flush=True)\n")


@pytest.fixture
def no_polling(monkeypatch):
    """The live hub's database polling put off for an hour: only the worker's announcement
    on Redis can tell a waiter or a follower that the job ended."""
    monkeypatch.setattr("smaweb.livehub.TICK_SECONDS", 3600.0)


def _message(resp) -> str:
    assert resp.status_code == 400, resp.get_json()
    return resp.get_json()["message"]


def test_wait_in_the_query_answers_with_the_final_status(api, worker):
    rb = api.create_runbook(content="print('hi')\n")
    resp = api.post(f"/api/v1/runbooks/{rb['name']}/start?wait=60", json={})
    assert resp.status_code == 201
    assert resp.get_json()["status"] == "Completed" and resp.get_json()["end_time"]
    # no body at all: the query is enough
    bare = api.client.post(f"/api/v1/runbooks/{rb['name']}/start?wait=60",
                           headers=api.headers)
    assert bare.status_code == 201 and bare.get_json()["status"] == "Completed"
    draft = api.create_runbook(content="print('draft')\n", publish=False)
    test = api.post(f"/api/v1/runbooks/{draft['name']}/draft/test?wait=60", json={})
    assert test.status_code == 201
    assert test.get_json()["status"] == "Completed" and test.get_json()["is_test"]


def test_wait_in_both_query_and_body_must_agree(api, worker):
    rb = api.create_runbook(content="print('hi')\n")
    same = api.post(f"/api/v1/runbooks/{rb['name']}/start?wait=60", json={"wait": 60})
    assert same.status_code == 201 and same.get_json()["status"] == "Completed"
    before = len(api.get("/api/v1/jobs", query_string={"runbook": rb["name"]})
                 .get_json()["items"])
    for path in ("start", "draft/test"):
        differ = api.post(f"/api/v1/runbooks/{rb['name']}/{path}?wait=5", json={"wait": 60})
        message = _message(differ)
        assert "wait is given twice" in message and "5" in message and "60" in message
    after = api.get("/api/v1/jobs", query_string={"runbook": rb["name"]}).get_json()["items"]
    assert len(after) == before  # refused before any job was started


@pytest.mark.parametrize("value, says", [
    ("soon", "Not a valid number"),
    ("301", "from 0 to 300"),
    ("-1", "from 0 to 300"),
    ("nan", "not permitted"),
    ("inf", "not permitted"),
])
def test_a_bad_wait_in_the_query_is_a_400_saying_why(api, value, says):
    rb = api.create_runbook()
    for path in ("start", "draft/test"):
        message = _message(api.post(f"/api/v1/runbooks/{rb['name']}/{path}?wait={value}",
                                    json={}))
        assert "wait" in message and says in message


def test_an_unknown_query_parameter_of_a_start_is_a_400(api):
    rb = api.create_runbook()
    message = _message(api.post(f"/api/v1/runbooks/{rb['name']}/start?wiat=5", json={}))
    assert "wiat" in message and "Unknown field" in message


def test_the_query_wait_is_in_the_openapi_document(client):
    doc = client.get("/api/openapi.json").get_json()
    for path in ("/api/v1/runbooks/{runbook}/start",
                 "/api/v1/runbooks/{runbook}/draft/test"):
        params = {p["name"]: p for p in doc["paths"][path]["post"]["parameters"]
                  if p["in"] == "query"}
        assert params["wait"]["schema"]["maximum"] == 300


def test_a_waiting_start_answers_when_the_job_ends(api, worker, job_tmp, no_polling):
    """The caller waits while the job runs, and is answered with the final status once the
    job ends: the order of events, told by the worker's announcement alone."""
    flag = job_tmp / "go"
    rb = api.create_runbook(content=BLOCKED)
    answers: list = []
    waiter = threading.Thread(target=lambda: answers.append(api.post(
        f"/api/v1/runbooks/{rb['name']}/start?wait=120",
        json={"arguments": [str(flag)]})))
    waiter.start()
    job = wait_for(lambda: next(iter(api.get("/api/v1/jobs", query_string={
        "runbook": rb["name"]}).get_json()["items"]), None), what="the job")
    wait_for(lambda: [r for r in api.records(job["id"]) if r["text"] == "waiting"],
             what="the job running")
    assert waiter.is_alive() and not answers  # it waits while the job runs
    flag.touch()
    waiter.join(60)
    assert not waiter.is_alive(), "the waiting start did not answer when the job ended"
    (resp,) = answers
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["id"] == job["id"] and body["status"] == "Completed" and body["end_time"]
    assert [r["text"] for r in api.records(job["id"])] == ["waiting", "done"]


def _events(chunks):
    """(event, data) pairs from the chunks of an event stream as they come."""
    buffer = ""
    for chunk in chunks:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines()
                          if ": " in line and not line.startswith(":"))
            if "event" in fields:
                yield fields["event"], json.loads(fields["data"])


def test_following_events_ends_after_the_final_record(api, worker, job_tmp, no_polling):
    flag = job_tmp / "go"
    rb = api.create_runbook(content=BLOCKED)
    job = api.start(rb["name"], arguments=[str(flag)])
    resp = api.get(f"/api/v1/jobs/{job['id']}/events?timeout=120", buffered=False)
    assert resp.status_code == 200
    seen = []
    for event, data in _events(resp.response):
        seen.append((event, data.get("text") or data.get("status")))
        if (event, data.get("text")) == ("record", "waiting"):
            flag.touch()  # the job ends now, while the stream is open
    resp.close()
    assert seen[-2:] == [("record", "done"), ("status", "Completed")]
    assert ("record", "waiting") in seen


def _schema_dump(services, job_ids: list[str]) -> list[dict]:
    """The jobs as read now, dumped by JobSchema (what the start answers write without it)."""
    import uuid

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from smacommon.db import get_engine
    from smacommon.models import Job
    from smacommon.schemas.job import JobSchema
    from smaweb.api.jobs import _with_names

    with Session(get_engine(services["database_url"])) as session:
        jobs = {str(j.id): j for j in session.scalars(
            select(Job).where(Job.id.in_([uuid.UUID(i) for i in job_ids])))}
        dumped = JobSchema(many=True).dump(_with_names(session, [jobs[i] for i in job_ids]))
    return json.loads(json.dumps(dumped))


def test_start_answers_are_the_schema_dump(api, worker, services):
    """A start's answer, written without the schema (a hot path), is what JobSchema dumps of
    the job: at once (New, no worker serving its group), after waiting (the final row, read
    again), a draft's test, and every job of a batch."""
    rb = api.create_runbook(content="import sys\nprint(sys.argv[1:])\n")
    draft = api.create_runbook(content="print('draft')\n", publish=False)
    answers = [
        api.post(f"/api/v1/runbooks/{rb['name']}/start",
                 json={"arguments": ["a", "é ✓"], "worker_group": "nobody"}),
        api.post(f"/api/v1/runbooks/{rb['name']}/start?wait=60", json={"arguments": ["b"]}),
        api.post(f"/api/v1/runbooks/{draft['name']}/draft/test?wait=60", json={}),
    ]
    assert [a.status_code for a in answers] == [201, 201, 201]
    bodies = [a.get_json() for a in answers]
    assert [b["status"] for b in bodies] == ["New", "Completed", "Completed"]
    assert bodies[0]["status_reason"] and bodies[1]["engine_path"] in ("warm", "cold")
    batch = api.post("/api/v1/jobs/batch", json={"jobs": [
        {"runbook": rb["name"], "arguments": ["c"], "worker_group": "nobody"},
        {"runbook": rb["name"], "parameters": {}, "worker_group": "nobody"}]})
    assert batch.status_code == 201, batch.get_json()
    bodies += batch.get_json()["items"]
    assert bodies == _schema_dump(services, [b["id"] for b in bodies])


def test_a_waiting_start_without_redis_reads_the_job_itself(api, worker, monkeypatch):
    """Without Redis the live hub neither subscribes nor reads a new waiter's job at once:
    the waiter reads it itself, and learns of its end from the hub's polling."""
    from smaweb.livehub import LiveHub

    app = api.client.application
    hub = LiveHub(app.extensions["sma_db"].factory, "")
    monkeypatch.setitem(app.extensions, "sma_live", hub)
    monkeypatch.setattr("smaweb.livehub.TICK_SECONDS", 0.2)
    rb = api.create_runbook(content="print('polled')\n")
    resp = api.post(f"/api/v1/runbooks/{rb['name']}/start?wait=60", json={})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "Completed"
    assert not hub.reads_new_feeds  # it had no Redis to subscribe with
    assert [r["text"] for r in api.records(resp.get_json()["id"])] == ["polled"]


def test_a_waiting_start_answers_with_the_row_the_hub_read(api, worker, job_tmp, no_polling):
    """The live hub reads a waited job's whole row when its end is announced; the start
    answers with that row, and does not read the job again itself."""
    from sqlalchemy import event

    from smacommon.streams import stream_channel

    app = api.client.application
    engine = app.extensions["sma_db"].factory.kw["bind"]
    flag = job_tmp / "go"
    rb = api.create_runbook(content=BLOCKED)
    answers: list = []
    waiter = threading.Thread(target=lambda: answers.append(api.post(
        f"/api/v1/runbooks/{rb['name']}/start?wait=120", json={"arguments": [str(flag)]})))
    waiter.start()
    job = wait_for(lambda: next(iter(api.get("/api/v1/jobs", query_string={
        "runbook": rb["name"]}).get_json()["items"]), None), what="the job")
    # the hub follows the job's channel: what ends it from now on is announced there
    channel = stream_channel(job["id"])
    wait_for(lambda: (listener := app.extensions["sma_live"].listener) is not None
             and channel in listener.channels, what="the hub following the job")
    readers: list[str] = []

    def whole_rows(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT") and "jobs.parameters" in statement:
            readers.append(threading.current_thread().name)

    event.listen(engine, "before_cursor_execute", whole_rows)
    try:
        flag.touch()
        waiter.join(60)
    finally:
        event.remove(engine, "before_cursor_execute", whole_rows)
    assert not waiter.is_alive(), "the waiting start did not answer when the job ended"
    (resp,) = answers
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "Completed" and body["end_time"] and body["exit_code"] == 0
    detail = api.get(f"/api/v1/jobs/{body['id']}").get_json()  # (the detail has more)
    assert body == {key: detail[key] for key in body}
    assert readers and set(readers) == {"sma-live-hub"}, readers


def test_a_waited_job_is_read_only_when_its_end_is_announced(api, worker, job_tmp, no_polling):
    """While the live hub hears every job's announcements, a waiting start registers its
    job before publishing it: no subscription of its own, no read of the job before an
    announcement (none can be missed), and the waiter itself reads nothing."""
    from sqlalchemy import event

    from smaweb.livelistener import EVERY_JOB

    app = api.client.application
    engine = app.extensions["sma_db"].factory.kw["bind"]
    hub = app.extensions["sma_live"]
    quick = api.create_runbook(content="print('up')\n")
    rb = api.create_runbook(content=BLOCKED)
    # a first waited start brings the hub up; it hears all once its pattern is confirmed
    first = api.post(f"/api/v1/runbooks/{quick['name']}/start?wait=60", json={})
    assert first.get_json()["status"] == "Completed", first.get_json()
    wait_for(lambda: (listener := hub.listener) is not None
             and listener.hears_all() is not None, what="the hub hearing every job")
    reads: list[tuple[str, bool]] = []

    def job_reads(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT") and "FROM jobs" in statement:
            reads.append((threading.current_thread().name, "jobs.parameters" in statement))

    flag = job_tmp / "go"
    answers: list = []
    waiter = threading.Thread(name="waiter", target=lambda: answers.append(api.post(
        f"/api/v1/runbooks/{rb['name']}/start?wait=120", json={"arguments": [str(flag)]})))
    event.listen(engine, "before_cursor_execute", job_reads)
    try:
        waiter.start()
        job = wait_for(lambda: next(iter(api.get("/api/v1/jobs", query_string={
            "runbook": rb["name"], "status": "Running"}).get_json()["items"]), None),
            what="the job running")
        assert hub.listener.pubsub.patterns.keys() == {EVERY_JOB.encode()}
        assert hub.listener.pubsub.channels.keys() == {hub.listener.wake_channel.encode()}
        flag.touch()
        waiter.join(60)
    finally:
        event.remove(engine, "before_cursor_execute", job_reads)
    assert not waiter.is_alive(), "the waiting start did not answer when the job ended"
    (resp,) = answers
    assert resp.status_code == 201 and resp.get_json()["id"] == job["id"], resp.get_json()
    assert resp.get_json()["status"] == "Completed"
    others = [read for read in reads if read[0] != "MainThread"]
    # the hub reads the whole row on each announcement (the records, then the end); nothing
    # reads the job's state alone, as a new job is read, and the waiter reads nothing
    assert others and set(others) == {("sma-live-hub", True)}, others


def test_no_two_connections_of_the_hub_pass_for_one(services):
    """A feed expected on one connection of the live hub is not read as new by that
    connection (it heard everything since); a hub's thread that ends when idle takes its
    listener with it, so the next listener's connection must be told apart from the last."""
    import os

    from smaweb.livelistener import Listener

    heard = []
    for _ in range(2):
        listener = Listener(os.environ["SMA_REDIS_URL"], 1.0)
        try:
            listener.follow(set())
            wait_for(lambda listener=listener: listener.announced(0.1) is not None
                     and listener.hears_all() is not None, what="the pattern confirmed")
            heard.append(listener.hears_all())
        finally:
            listener.close()
        assert listener.hears_all() is None  # closed: it promises nothing
    assert heard[0] != heard[1], heard
