"""Schedules through the API, fired by real beat processes, once per fire time."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smacommon.db import get_engine
from smacommon.models import Job, Schedule
from smacommon.services.schedules import fire_due


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _schedule(api, **fields):
    body = {"name": f"s-{uuid.uuid4().hex[:8]}", "frequency": "Day", **fields}
    resp = api.post("/api/v1/schedules", json=body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _jobs(services, **where) -> list[Job]:
    with Session(get_engine(services["database_url"])) as session:
        query = select(Job)
        for key, value in where.items():
            query = query.where(getattr(Job, key) == value)
        return list(session.scalars(query))


def test_schedule_crud_and_next_run(api):
    start = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    created = _schedule(api, start_time=_iso(start), time_zone="Europe/Paris",
                        description="mornings")
    assert created["next_run"].startswith("2030-03-01T09:00")
    assert created["missed"] == "run_once" and created["enabled"] is True
    name = created["name"]
    assert api.get(f"/api/v1/schedules/{name}").get_json()["id"] == created["id"]
    assert name in [s["name"] for s in api.get("/api/v1/schedules").get_json()["items"]]
    weekly = api.patch(f"/api/v1/schedules/{name}", json={
        "frequency": "Week", "week_days": ["Wednesday"]}).get_json()
    assert weekly["next_run"].startswith("2030-03-06T")  # the first Wednesday
    off = api.patch(f"/api/v1/schedules/{name}", json={"enabled": False}).get_json()
    assert off["next_run"] is None
    on = api.patch(f"/api/v1/schedules/{name}", json={"enabled": True}).get_json()
    assert on["next_run"] == weekly["next_run"]
    assert api.post("/api/v1/schedules", json={"name": name, "frequency": "Day"}) \
        .status_code == 409
    assert api.delete(f"/api/v1/schedules/{name}").status_code == 204
    assert api.get(f"/api/v1/schedules/{name}").status_code == 404


def test_month_and_cron_schedules(api):
    month = _schedule(api, frequency="Month", start_time="2030-01-01T06:00:00Z",
                      monthly_occurrences=[{"occurrence": "Second", "day": "Tuesday"}])
    assert month["next_run"].startswith("2030-01-08T06:00")
    cron = _schedule(api, frequency="Cron", cron="15 3 * * sun",
                     start_time="2030-01-01T00:00:00Z", time_zone="America/New_York")
    assert cron["next_run"].startswith("2030-01-06T08:15")  # 03:15 EST


def test_bad_schedules_say_what_to_fix(api):
    def bad(body, status=400):
        resp = api.post("/api/v1/schedules", json={"name": f"b-{uuid.uuid4().hex[:6]}",
                                                   **body})
        assert resp.status_code == status, resp.get_json()
        return resp.get_json()["message"] + str(resp.get_json().get("errors"))

    assert "IANA" in bad({"frequency": "Day", "time_zone": "Mars/Base"})
    assert "five fields" in bad({"frequency": "Cron", "cron": "* *"})
    assert "frequency" in bad({"frequency": "Fortnightly"})
    assert "start_time" in bad({"frequency": "Day", "start_time": "2030-01-01T09:00:00"})
    assert "only to the Week" in bad({"frequency": "Day", "week_days": ["Monday"]})
    assert "after start_time" in bad({"frequency": "Day", "start_time": "2030-01-02T00:00:00Z",
                                      "expiry_time": "2030-01-01T00:00:00Z"})
    assert "name" in bad({"frequency": "Day", "name": "bad/name"})
    assert api.patch("/api/v1/schedules/nope", json={}).status_code == 404


def test_links(api):
    schedule = _schedule(api, start_time="2030-01-01T06:00:00Z")
    typed = api.create_runbook(content="def main(count: int, who: str = 'x'):\n    print(who)\n")
    links = f"/api/v1/schedules/{schedule['name']}/runbooks"
    bad = api.post(links, json={"runbook": typed["name"], "parameters": {"count": "many"}})
    assert bad.status_code == 400 and "count" in bad.get_json()["message"]
    missing = api.post(links, json={"runbook": typed["name"]})
    assert missing.status_code == 400 and "count" in missing.get_json()["message"]
    draft = api.create_runbook(publish=False)
    assert api.post(links, json={"runbook": draft["name"]}).status_code == 409
    assert api.post(links, json={"runbook": "no-such"}).status_code == 404
    link = api.post(links, json={"runbook": typed["name"], "parameters": {"count": "3"},
                                 "worker_group": "nightly"})
    assert link.status_code == 201, link.get_json()
    assert link.get_json()["parameters"] == {"count": 3}
    assert link.get_json()["next_run"].startswith("2030-01-01T06:00:00")
    assert api.post(links, json={"runbook": typed["name"]}).status_code == 409
    other = _schedule(api, start_time="2030-01-01T07:00:00Z")
    api.post(f"/api/v1/schedules/{other['name']}/runbooks",
             json={"runbook": typed["name"], "parameters": {"count": 1}})
    mine = api.get(f"/api/v1/runbooks/{typed['name']}/schedules").get_json()["items"]
    assert sorted(m["schedule"] for m in mine) == sorted([schedule["name"], other["name"]])
    assert api.delete(f"{links}/{typed['name']}").status_code == 204
    assert api.delete(f"{links}/{typed['name']}").status_code == 404
    assert api.delete(f"/api/v1/runbooks/{typed['name']}").status_code == 204
    assert api.get(f"/api/v1/schedules/{other['name']}/runbooks").get_json()["items"] == []


def _due_schedule(api, services, runbook, **fields) -> dict:
    schedule = _schedule(api, **fields)
    resp = api.post(f"/api/v1/schedules/{schedule['name']}/runbooks",
                    json={"runbook": runbook, "worker_group": "nobody-runs-these"})
    assert resp.status_code == 201, resp.get_json()
    return schedule


def test_missed_fire_times_run_once_or_are_skipped(api, services):
    rb = api.create_runbook()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    once = _due_schedule(api, services, rb["name"], frequency="Minute", interval=5,
                         start_time=_iso(start))
    skip = _due_schedule(api, services, rb["name"], frequency="Minute", interval=5,
                         start_time=_iso(start), missed="skip")
    engine = get_engine(services["database_url"])
    # make them look as beat left them five hours ago
    with Session(engine) as session:
        for s in session.scalars(select(Schedule)):
            s.next_run = start
        session.commit()
    assert fire_due(engine) == 1
    jobs = _jobs(services, started_by=f"schedule:{once['id']}")
    assert len(jobs) == 1 and not _jobs(services, started_by=f"schedule:{skip['id']}")
    for name in (once["name"], skip["name"]):
        nxt = datetime.fromisoformat(api.get(f"/api/v1/schedules/{name}").get_json()["next_run"])
        assert datetime.now(UTC) < nxt <= datetime.now(UTC) + timedelta(minutes=5)
    assert fire_due(engine) == 0  # nothing more is due
    # a schedule firing is nobody's change: its job names the schedule; the audit does not
    audit = api.get("/api/v1/audit?limit=100").get_json()["items"]
    assert audit and not [e for e in audit if e["actor"].startswith("schedule:")]


def test_expired_or_disabled_schedules_fire_nothing(api, services):
    rb = api.create_runbook()
    now = datetime.now(UTC)
    off = _due_schedule(api, services, rb["name"], frequency="Minute",
                        start_time=_iso(now - timedelta(minutes=3)))
    api.patch(f"/api/v1/schedules/{off['name']}", json={"enabled": False})
    expired = _due_schedule(api, services, rb["name"], frequency="Minute",
                            start_time=_iso(now - timedelta(minutes=10)),
                            expiry_time=_iso(now - timedelta(minutes=1)))
    assert api.get(f"/api/v1/schedules/{expired['name']}").get_json()["next_run"] is None
    assert fire_due(get_engine(services["database_url"])) == 0
    assert _jobs(services) == []


def test_concurrent_fires_start_one_job_per_link(api, services):
    first, second = api.create_runbook(), api.create_runbook()
    schedule = _due_schedule(api, services, first["name"], frequency="OneTime",
                             start_time=_iso(datetime.now(UTC) + timedelta(seconds=1)))
    api.post(f"/api/v1/schedules/{schedule['name']}/runbooks",
             json={"runbook": second["name"], "worker_group": "nobody-runs-these"})
    engine = get_engine(services["database_url"])
    time.sleep(1.2)
    results: list[int] = []
    barrier = threading.Barrier(4)

    def fire():
        barrier.wait(5)
        results.append(fire_due(engine))

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(results) == 2
    jobs = _jobs(services, started_by=f"schedule:{schedule['id']}")
    assert sorted(str(j.runbook_id) for j in jobs) == sorted([first["id"], second["id"]])


def test_two_beats_fire_each_time_once_and_jobs_run(api, services, processes, worker):
    processes.beat()
    processes.beat()
    time.sleep(1.0)  # both beats are checking before the schedule exists
    rb = api.create_runbook(content="print('scheduled hello')\n")
    soon = datetime.now(UTC) + timedelta(seconds=2)
    schedule = _schedule(api, frequency="OneTime", start_time=_iso(soon))
    api.post(f"/api/v1/schedules/{schedule['name']}/runbooks", json={"runbook": rb["name"]})
    every = _schedule(api, frequency="Cron", cron="* * * * *",
                      start_time=_iso(datetime.now(UTC) - timedelta(minutes=1)))
    api.post(f"/api/v1/schedules/{every['name']}/runbooks", json={"runbook": rb["name"]})
    deadline = time.monotonic() + 30
    while not _jobs(services, started_by=f"schedule:{schedule['id']}"):
        assert time.monotonic() < deadline, "the schedule did not fire"
        time.sleep(0.2)
    (job,) = _jobs(services, started_by=f"schedule:{schedule['id']}")
    done = api.wait(str(job.id), timeout=30)
    assert done["status"] == "Completed"
    assert done["started_by"] == f"schedule:{schedule['id']}"
    time.sleep(1.5)  # both beats had more checks: still one job for the one fire time
    assert len(_jobs(services, started_by=f"schedule:{schedule['id']}")) == 1
    assert api.get(f"/api/v1/schedules/{schedule['name']}").get_json()["next_run"] is None
    # the every-minute cron fired at most once per minute that passed
    minutes = {j.created_at.replace(second=0, microsecond=0)
               for j in _jobs(services, started_by=f"schedule:{every['id']}")}
    with Session(get_engine(services["database_url"])) as session:
        count = session.scalar(select(func.count()).select_from(Job).where(
            Job.started_by == f"schedule:{every['id']}"))
    assert count == len(minutes) <= 2
