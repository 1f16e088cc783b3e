"""Attempts you can read: each run of a job is an attempt, its records carry its number, and
the API, the portal and `sma job output` mark where each attempt after the first begins.

A lost worker is a real `kill -9` of a real worker's process group; beat's reaper resumes
the job on another worker (short leases: see conftest).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from datetime import datetime

import pytest

from tests.conftest import ADMIN_TOKEN, ROOT
from tests.test_job_control import STEPS, _running_with
from tests.test_portal import sign_in

pytestmark = pytest.mark.e2e
MARKER = "--- Attempt"


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _output(api, job_id, **query) -> str:
    resp = api.get(f"/api/v1/jobs/{job_id}/output", query_string=query)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_data(as_text=True)


def _pages(api, job_id, **query) -> list[dict]:
    """The records, page by page as the API hands them out."""
    items, after = [], 0
    while after is not None:
        page = api.get(f"/api/v1/jobs/{job_id}/streams",
                       query_string={**query, "after_seq": after}).get_json()
        items += page["items"]
        after = page["next_after_seq"]
    return items


def _events(api, job_id, **query) -> list[str]:
    body = api.get(f"/api/v1/jobs/{job_id}/events",
                   query_string={"timeout": 5, **query}).get_data(as_text=True)
    return [line for line in body.splitlines() if line.startswith("data: {\"seq\"")]


@pytest.fixture
def resumed_job(api, services, processes):
    """A job whose worker was killed mid-run, resumed from its checkpoint on another."""
    group = f"g-{uuid.uuid4().hex[:6]}"
    first = processes.worker(group, concurrency=1)
    rb = api.create_runbook(content=STEPS.format(n=8, pause=0.3), worker_group=group)
    job = api.start(rb["name"])
    _running_with(api, job["id"], "step 3")
    first.kill()
    second = processes.worker(group, concurrency=1)
    processes.beat()
    done = api.wait(job["id"], timeout=90)
    assert done["status"] == "Completed" and done["attempt"] == 2, done
    return done, first.name, second.name


def test_records_output_and_detail_of_a_job_resumed_after_its_worker_was_lost(
        api, client, resumed_job, tmp_path):
    job, first, second = resumed_job
    job_id = job["id"]

    # every record carries the attempt that wrote it: attempt 1's, then attempt 2's
    records = api.records(job_id)
    attempts = [r["attempt"] for r in records]
    assert attempts == sorted(attempts) and set(attempts) == {1, 2}
    by_text = {r["text"]: r["attempt"] for r in records}
    assert by_text["step 0"] == 1 and by_text["done"] == 2

    # ?attempt= keeps one attempt's records, on every page
    one = api.records(job_id, attempt=1)
    two = _pages(api, job_id, attempt=2, limit=2)
    assert one + two == records
    assert {r["attempt"] for r in one} == {1} and {r["attempt"] for r in two} == {2}

    # the job lists both attempts: who ran them, when, why they started and how they ended
    a1, a2 = job["attempts"]
    assert (a1["number"], a1["worker"], a1["cause"]) == (1, first, "first")
    assert a1["status"] == "Resuming" and f"Its worker {first} was lost" in a1["end_reason"]
    assert a1["reason"].startswith("Started by user:")
    assert (a2["number"], a2["worker"], a2["cause"]) == (2, second, "worker_lost")
    assert a2["status"] == "Completed" and a2["end_reason"] is None
    assert f"Its worker {first} was lost" in a2["reason"]
    for a in (a1, a2):
        assert _when(a["started_at"]) <= _when(a["ended_at"])
    assert _when(a1["ended_at"]) <= _when(a2["started_at"])
    checkpoint = _when(a2["resumed_from_checkpoint_at"])
    assert _when(a1["started_at"]) < checkpoint < _when(a1["ended_at"])
    assert a1["resumed_from_checkpoint_at"] is None
    assert a2["after_seq"] == max(r["seq"] for r in one)
    clock = checkpoint.strftime("%H:%M:%S UTC")
    summary = (f"Attempt 2 — resumed on worker {second} from the checkpoint of {clock} "
               "after its worker was lost")
    assert a2["summary"] == summary

    # /output: one marker line where attempt 2 begins, and none with ?attempt=
    lines = _output(api, job_id).splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith(MARKER)]
    assert len(marks) == 1 and lines[marks[0]] == f"--- {summary} ---"
    outputs = [r["text"] for r in records if r["stream"] == "Output"]
    assert lines[:marks[0]] + lines[marks[0] + 1:] == outputs
    assert lines[marks[0] + 1] == next(r["text"] for r in two if r["stream"] == "Output")
    assert _output(api, job_id, attempt=2).splitlines() == [
        r["text"] for r in two if r["stream"] == "Output"]

    # the live stream too: each record with its attempt, and ?attempt=
    assert all('"attempt": 2' in e for e in _events(api, job_id, attempt=2))
    assert len(_events(api, job_id, attempt=2)) == len(two)
    assert len(_events(api, job_id)) == len(records)

    # the portal: a separator before attempt 2's records, the attempts, a badge
    sign_in(client)
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert page.count('class="attempt-sep"') == 1
    assert f'data-attempt="2">{summary}</div>' in page
    lines_drawn = re.findall(r'<div class="(rec|attempt-sep)[^"]*"[^>]* data-attempt="(\d+)"',
                             page)
    sep = lines_drawn.index(("attempt-sep", "2"))
    assert {a for _, a in lines_drawn[:sep]} == {"1"}
    assert {a for _, a in lines_drawn[sep + 1:]} == {"2"}
    assert 'id="attempt-1"' in page and 'id="attempt-2"' in page
    assert first in page and second in page and "resumed after its worker was lost" in page
    assert "resumed · attempt 2" in page
    assert "resumed · attempt 2" in client.get("/jobs").get_data(as_text=True)
    # the earlier-output pages mark the boundary too
    earlier = client.get(f"/jobs/{job_id}/records?before={records[-1]['seq'] + 1}")
    assert earlier.get_data(as_text=True).count('class="attempt-sep"') == 1
    ones = client.get(f"/jobs/{job_id}/records?before={a2['after_seq'] + 1}")
    assert 'class="attempt-sep"' not in ones.get_data(as_text=True)

    # `sma job output` prints the marker line too; --attempt keeps one attempt
    cli = _sma(tmp_path, "job", "output", job_id)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.splitlines() == lines
    only = _sma(tmp_path, "job", "output", job_id, "--attempt", "1")
    assert only.returncode == 0 and MARKER not in only.stdout
    assert only.stdout.splitlines() == [r["text"] for r in one if r["stream"] == "Output"]
    followed = _sma(tmp_path, "job", "output", job_id, "--follow")
    assert followed.returncode == 0 and followed.stdout.splitlines() == lines
    shown = _sma(tmp_path, "job", "show", job_id)
    assert "worker_lost" in shown.stdout and second in shown.stdout
    # and the Python client's typed results
    from smacli.client import SmaClient

    sma = SmaClient(os.environ["SMA_API_URL"], ADMIN_TOKEN)
    typed = sma.get_job(job_id)
    assert typed.attempt == 2 and [a.number for a in typed.attempts] == [1, 2]
    assert typed.attempts[1].summary == summary and typed.attempts[1].worker == second
    assert [r.attempt for r in sma.job_records(job_id, attempt=2)] == [2] * len(two)
    assert sma.job_output(job_id, attempt=1).splitlines() == only.stdout.splitlines()


def _sma(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """`sma ...` as a user runs it (this tree's code), against the test server."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "PYTHONPATH": str(ROOT), "SMA_URL": os.environ["SMA_API_URL"],
           "SMA_TOKEN": ADMIN_TOKEN}
    return subprocess.run([sys.executable, "-m", "smacli.main", *args], capture_output=True,
                          text=True, env=env, timeout=60, cwd=tmp_path)


def test_a_job_that_ran_once_has_one_attempt_and_no_marker(api, client, worker):
    job = api.run("import smarunbook\nprint('one')\nsmarunbook.write_warning('careful')\n"
                  "print('two')\n")
    assert job["status"] == "Completed" and job["attempt"] == 1
    (only,) = job["attempts"]
    assert (only["number"], only["cause"], only["status"]) == (1, "first", "Completed")
    assert only["worker"] == job["worker"] and only["resumed_from_checkpoint_at"] is None
    assert only["summary"] == f"Attempt 1 — started on worker {job['worker']}"
    assert {r["attempt"] for r in api.records(job["id"])} == {1}
    assert _output(api, job["id"]) == "one\ntwo\n"
    sign_in(client)
    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert 'class="attempt-sep"' not in page
    assert 'id="job-attempt" title="Each run of a job is an attempt" hidden' in page  # no badge


def test_a_job_resumed_by_a_user_is_its_next_attempt(api, worker):
    rb = api.create_runbook(content=STEPS.format(n=6, pause=0.3))
    job = api.start(rb["name"])
    _running_with(api, job["id"], "step 1")
    assert api.post(f"/api/v1/jobs/{job['id']}/suspend").status_code == 202
    suspended = api.wait(job["id"], timeout=20, statuses=("Suspended",))
    (first,) = suspended["attempts"]
    assert _when(first["started_at"]) < _when(suspended["checkpoint_at"]) < _when(
        first["ended_at"])
    assert first["status"] == "Suspended" and first["end_reason"] == suspended["status_reason"]
    resumed = api.post(f"/api/v1/jobs/{job['id']}/resume").get_json()
    assert resumed["attempt"] == 2 and resumed["attempts"][1]["cause"] == "user"
    done = api.wait(job["id"], timeout=30)
    assert done["status"] == "Completed" and done["attempt"] == 2
    second = done["attempts"][1]
    assert done["checkpoint_at"] is None  # dropped with the checkpoint when it completed
    assert second["resumed_from_checkpoint_at"] == suspended["checkpoint_at"]
    assert second["reason"].startswith("Resumed by user:") and second["status"] == "Completed"
    assert second["resumed_from_checkpoint_at"] is not None
    text = _output(api, job["id"])
    assert f"--- {second['summary']} ---\n" in text
    assert second["summary"].endswith("after a user resumed it")


@pytest.mark.parametrize("path", ["streams", "events", "output"])
@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "", "99999999999"])
def test_a_bad_attempt_is_a_400_that_says_why(api, path, value):
    rb = api.create_runbook()
    job = api.start(rb["name"], worker_group="nobody-serves-this")
    resp = api.get(f"/api/v1/jobs/{job['id']}/{path}", query_string={"attempt": value})
    assert resp.status_code == 400, resp.get_data(as_text=True)
    body = resp.get_json()
    assert list(body["errors"]) == ["attempt"] and "attempt" in body["message"], body
    if value in ("0", "-1"):
        assert body["errors"]["attempt"] == ["Attempts are numbered from 1."]


@pytest.mark.parametrize("path", ["streams", "events", "output"])
def test_an_attempt_the_job_has_not_had_is_a_400(api, path):
    rb = api.create_runbook()
    job = api.start(rb["name"], worker_group="nobody-serves-this")
    resp = api.get(f"/api/v1/jobs/{job['id']}/{path}", query_string={"attempt": 2})
    assert resp.status_code == 400
    assert resp.get_json()["message"] == f"Job {job['id']} has no attempt 2: it has run once."
    ok = api.get(f"/api/v1/jobs/{job['id']}/{path}",
                 query_string={"attempt": 1, **({"timeout": 0} if path == "events" else {})})
    assert ok.status_code == 200


def test_only_lost_workers_count_towards_max_attempts(api, services, settings):
    """Resumes by a user are attempts too, but only lost ones count towards
    SMA_MAX_ATTEMPTS (the real claim and reaper against the real database)."""
    from smacommon.db import get_engine
    from smacommon.services.jobs import transition
    from smacommon.states import JobStatus
    from smaworker.claim import claim_job
    from smaworker.reaper import reap

    engine = get_engine(services["database_url"])
    job_id = uuid.UUID(api.start(api.create_runbook()["name"],
                                 worker_group="nobody-serves-this")["id"])

    def claim(worker: str) -> None:  # a lease that has already run out: lost at once
        assert claim_job(engine, job_id, worker=worker, actor=f"worker:{worker}",
                         lease_seconds=-1, token_hash=uuid.uuid4().hex) is not None

    for n in (1, 2):  # run, suspended, resumed by a user: twice
        claim(f"w{n}")
        with engine.begin() as conn:
            assert transition(conn, job_id, JobStatus.SUSPENDED, status_reason="paused")
        assert api.post(f"/api/v1/jobs/{job_id}/resume").status_code == 202
        if n == 1:  # until a worker claims it, the attempt waits
            waiting = api.get(f"/api/v1/jobs/{job_id}").get_json()["attempts"][1]
            assert (waiting["worker"], waiting["started_at"]) == (None, None)
            assert waiting["summary"] == ("Attempt 2 — waiting for a worker to resume it from "
                                          "the start (no checkpoint) after a user resumed it")
    for lost in (1, 2):
        claim(f"w{lost + 2}")
        assert reap(engine, settings, lambda *_: None)["resumed"] == 1
    claim("w5")
    assert reap(engine, settings, lambda *_: None)["suspended"] == 1
    job = api.get(f"/api/v1/jobs/{job_id}").get_json()
    assert job["status"] == "Suspended" and "lost 3 times" in job["status_reason"]
    assert [(a["number"], a["cause"], a["worker"], a["status"]) for a in job["attempts"]] == [
        (1, "first", "w1", "Suspended"), (2, "user", "w2", "Suspended"),
        (3, "user", "w3", "Resuming"), (4, "worker_lost", "w4", "Resuming"),
        (5, "worker_lost", "w5", "Suspended")]


def test_sma_job_output_refuses_a_bad_attempt(api, services, tmp_path):
    job = api.start(api.create_runbook()["name"], worker_group="nobody-serves-this")
    zero = _sma(tmp_path, "job", "output", job["id"], "--attempt", "0")
    assert zero.returncode != 0 and "--attempt must be 1 or more" in zero.stderr
    unknown = _sma(tmp_path, "job", "output", job["id"], "--attempt", "3")
    assert unknown.returncode != 0
    assert f"Job {job['id']} has no attempt 3: it has run once." in unknown.stderr
    word = _sma(tmp_path, "job", "output", job["id"], "--attempt", "two")
    assert word.returncode != 0 and "--attempt" in word.stderr


def test_an_attempt_that_began_without_output_is_marked_at_the_end(api, client, services):
    from smacommon.db import get_engine
    from smacommon.services.jobs import transition
    from smacommon.states import JobStatus
    from smaworker.claim import claim_job

    engine = get_engine(services["database_url"])
    job_id = api.start(api.create_runbook()["name"], worker_group="nobody-serves-this")["id"]
    key = uuid.UUID(job_id)
    assert claim_job(engine, key, worker="w1", actor="worker:w1", lease_seconds=30,
                     token_hash=uuid.uuid4().hex) is not None
    with engine.begin() as conn:
        assert transition(conn, key, JobStatus.SUSPENDED, status_reason="paused")
    assert api.post(f"/api/v1/jobs/{job_id}/resume").status_code == 202
    assert claim_job(engine, key, worker="w2", actor="worker:w2", lease_seconds=30,
                     token_hash=uuid.uuid4().hex) is not None
    line = ("Attempt 2 — resumed on worker w2 from the start (no checkpoint) after a user "
            "resumed it")
    assert _output(api, job_id) == f"--- {line} ---\n"
    assert _output(api, job_id, attempt=2) == ""
    sign_in(client)
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f'<div class="attempt-sep" role="separator" data-attempt="2">{line}</div>' in page
    assert re.search(r'id="records"[^>]* data-attempt="2"', page)  # live goes on from 2


def test_a_job_resumed_before_attempts_were_kept_gets_its_row_at_the_claim(api, services):
    """A job the reaper of an older sma resumed (attempt 2, no attempt rows) is claimed as
    attempt 2, resumed after its worker was lost: the only resume that sma made."""
    from sqlalchemy import update

    from smacommon.db import get_engine
    from smacommon.models import Job
    from smaworker.claim import claim_job

    engine = get_engine(services["database_url"])
    job_id = api.start(api.create_runbook()["name"], worker_group="nobody-serves-this")["id"]
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == uuid.UUID(job_id))
                     .values(status="Resuming", attempt=2))
    assert claim_job(engine, uuid.UUID(job_id), worker="w9", actor="worker:w9",
                     lease_seconds=30, token_hash=uuid.uuid4().hex) is not None
    (row,) = api.get(f"/api/v1/jobs/{job_id}").get_json()["attempts"]
    assert (row["number"], row["cause"], row["worker"]) == (2, "worker_lost", "w9")


def test_a_claim_tried_again_after_its_answer_was_lost_numbers_after_earlier_records(
        api, services):
    """A claim whose commit went through but whose answer was lost (a cut connection) is
    tried once more and finds its own claim: it numbers its records after the earlier
    attempt's, as the first try would have."""
    from smacommon.db import get_engine, utcnow
    from smacommon.services.jobs import transition
    from smacommon.states import JobStatus
    from smaworker.capture import StreamWriter
    from smaworker.claim import claim_job

    engine = get_engine(services["database_url"])
    job_id = api.start(api.create_runbook()["name"], worker_group="nobody-serves-this")["id"]
    key = uuid.UUID(job_id)
    assert claim_job(engine, key, worker="w1", actor="worker:w1", lease_seconds=30,
                     token_hash=uuid.uuid4().hex) is not None
    with engine.begin() as conn:  # as the worker does once the job runs
        assert transition(conn, key, JobStatus.RUNNING, start_time=utcnow())
    writer = StreamWriter(engine, key, attempt=1)
    for text in ("one", "two", "three"):
        writer.add("Output", text)
    writer.flush()
    with engine.begin() as conn:
        assert transition(conn, key, JobStatus.SUSPENDED, status_reason="paused")
    assert api.post(f"/api/v1/jobs/{job_id}/resume").status_code == 202
    token = uuid.uuid4().hex
    first = claim_job(engine, key, worker="w2", actor="worker:w2", lease_seconds=30,
                      token_hash=token)
    again = claim_job(engine, key, worker="w2", actor="worker:w2", lease_seconds=30,
                      token_hash=token)
    assert first is not None and again is not None
    assert first.after_seq == again.after_seq == 3
