"""A job named by a short id: the first 8 or more hex digits of its id (what the portal
shows), in `GET /api/v1/jobs/{id}` and the routes that act on one job."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session

from smacommon.db import get_engine
from smacommon.models import Job

PARKED = "no-worker-serves-this"  # the job stays New


@pytest.fixture
def job(api):
    api.create_runbook("short", content="print(1)\n")
    return api.start("short", worker_group=PARKED)


def _twin(services, job: dict, digits: int) -> str:
    """A second job whose id starts with the same `digits` hex digits as `job`'s."""
    given = uuid.UUID(job["id"]).hex
    twin = uuid.UUID(given[:digits] + ("0" if given[digits] != "0" else "1")
                     + given[digits + 1:])
    with Session(get_engine(services["database_url"])) as s, s.begin():
        s.add(Job(id=twin, runbook_id=uuid.UUID(job["runbook_id"]), worker_group=PARKED,
                  started_by="user:test"))
    return str(twin)


@pytest.mark.parametrize("given", [
    lambda i: i[:8], lambda i: i[:13], lambda i: i[:8].upper(), lambda i: i[:8] + "\u2026",
    lambda i: i.replace("-", ""), lambda i: i,
])
def test_a_unique_prefix_names_the_job(api, job, given):
    found = api.get(f"/api/v1/jobs/{given(job['id'])}")
    assert found.status_code == 200, found.get_json()
    assert found.get_json()["id"] == job["id"]


def test_the_routes_of_one_job_take_the_prefix(api, job):
    records = api.get(f"/api/v1/jobs/{job['id'][:8]}/streams")
    assert records.status_code == 200 and records.get_json()["items"] == []
    stopped = api.post(f"/api/v1/jobs/{job['id'][:8]}/stop")
    assert stopped.status_code == 202 and stopped.get_json()["id"] == job["id"]
    assert stopped.get_json()["status"] == "Stopped"


def test_an_ambiguous_prefix_lists_the_candidates(api, job, services):
    twin = _twin(services, job, 10)
    both = api.get(f"/api/v1/jobs/{job['id'][:8]}")
    assert both.status_code == 409
    body = both.get_json()
    assert sorted(body["errors"]["candidates"]) == sorted([job["id"], twin])
    assert job["id"] in body["message"] and twin in body["message"]
    assert "give more of the id" in body["message"]
    longer = api.get(f"/api/v1/jobs/{job['id'][:12]}")  # 11th digit differs
    assert longer.status_code == 200 and longer.get_json()["id"] == job["id"]


@pytest.mark.parametrize("given, says", [
    ("0000000000", "No job id starts with '0000000000'."),
    ("c454caa", "the first 8 or more hex digits"),      # too short
    ("c454caaz1", "the first 8 or more hex digits"),    # not hex
    ("00000000-0000-0000-0000-000000000000", "not found"),
])
def test_no_match_or_a_bad_id_is_404(api, job, given, says):
    missing = api.get(f"/api/v1/jobs/{given}")
    assert missing.status_code == 404 and says in missing.get_json()["message"]


def test_a_prefix_is_a_range_on_the_primary_key(job, services):
    """The lookup is an index range on jobs.id (SQLite and PostgreSQL), not a scan."""
    from sqlalchemy import event

    from smacommon.services.jobs import get_job

    engine = get_engine(services["database_url"])
    seen: list[str] = []

    def capture(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with Session(engine) as s:
            assert str(get_job(s, job["id"][:9]).id) == job["id"]
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    query = next(s for s in seen if "FROM jobs" in s)
    assert "jobs.id >=" in query and "jobs.id <=" in query and "LIMIT" in query
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT * FROM jobs WHERE id >= ? AND id <= ?",
                ("a" * 32, "b" * 32)))
            assert "SEARCH" in plan and "SCAN" not in plan, plan
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table: force the choice
            plan = " ".join(r[0] for r in conn.exec_driver_sql(
                "EXPLAIN SELECT * FROM jobs WHERE id >= %(low)s AND id <= %(high)s",
                {"low": uuid.UUID(int=0), "high": uuid.UUID(int=2**127)}))
            assert "Index" in plan and "Seq Scan" not in plan, plan
