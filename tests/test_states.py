"""The job state machine: the transition table and one conditional UPDATE per move."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.orm import Session

from smacommon.db import get_engine
from smacommon.errors import IllegalTransition
from smacommon.models import Job
from smacommon.services.jobs import require_transition, transition
from smacommon.states import FINAL_STATUSES, JobStatus

S = JobStatus


@pytest.fixture
def job(api, services):
    api.create_runbook("sm", content="print(1)\n")
    return api.start("sm", worker_group="no-worker-serves-this")


def _set(engine, job_id, status):
    with Session(engine) as s, s.begin():
        s.get(Job, job_id).status = status.value


@pytest.mark.parametrize("path", [
    [S.ACTIVATING, S.RUNNING, S.COMPLETED],
    [S.ACTIVATING, S.RUNNING, S.FAILED],
    [S.ACTIVATING, S.RUNNING, S.STOPPING, S.STOPPED],
    [S.ACTIVATING, S.RUNNING, S.SUSPENDING, S.SUSPENDED, S.RESUMING, S.ACTIVATING],
    [S.STOPPED],
])
def test_legal_paths(job, services, path):
    import uuid

    engine = get_engine(services["database_url"])
    job_id = uuid.UUID(job["id"])
    for status in path:
        with Session(engine) as s, s.begin():
            assert transition(s, job_id, status), status
    with Session(engine) as s:
        row = s.get(Job, job_id)
        assert row.status == path[-1].value
        if path[-1] in FINAL_STATUSES:
            assert row.end_time is not None


@pytest.mark.parametrize("current, target", [
    (S.NEW, S.RUNNING), (S.NEW, S.COMPLETED), (S.COMPLETED, S.RUNNING),
    (S.FAILED, S.RESUMING), (S.STOPPED, S.ACTIVATING), (S.RUNNING, S.ACTIVATING),
])
def test_illegal_moves_are_refused_with_current_status(job, services, current, target):
    import uuid

    engine = get_engine(services["database_url"])
    job_id = uuid.UUID(job["id"])
    _set(engine, job_id, current)
    with Session(engine) as s, s.begin(), pytest.raises(IllegalTransition) as info:
        require_transition(s, job_id, target)
    assert current.value in info.value.message
    if current in FINAL_STATUSES:
        assert f"has already ended ({current.value})" in info.value.message
    else:
        assert target.value in info.value.message
    assert info.value.status_code == 409


def test_racing_claims_one_wins(job, services):
    import uuid

    engine = get_engine(services["database_url"])
    job_id = uuid.UUID(job["id"])
    barrier = threading.Barrier(4)
    wins = []

    def claim():
        barrier.wait()
        with Session(engine) as s, s.begin():
            if transition(s, job_id, S.ACTIVATING, sources=frozenset({S.NEW})):
                wins.append(1)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(wins) == 1
