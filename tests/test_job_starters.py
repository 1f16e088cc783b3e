"""Who started a job, by name: a schedule's or webhook's name next to its id (API, portal,
CLI), and its id once it is deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from smacommon.db import get_engine
from smacommon.models import Schedule
from smacommon.services.schedules import fire_due
from tests.test_cli import cli  # noqa: F401 - the fixture
from tests.test_portal import sign_in

PARKED = "nobody-runs-these"  # the jobs stay New


def _scheduled_job(api, services, runbook: str) -> tuple[dict, dict]:
    """A schedule named `nightly` that has fired once: (the schedule, its job)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    schedule = api.post("/api/v1/schedules", json={
        "name": "nightly", "frequency": "Day", "start_time": start.isoformat(),
        "time_zone": "UTC"}).get_json()
    linked = api.post("/api/v1/schedules/nightly/runbooks",
                      json={"runbook": runbook, "worker_group": PARKED})
    assert linked.status_code == 201, linked.get_json()
    engine = get_engine(services["database_url"])
    with Session(engine) as session:
        for row in session.scalars(select(Schedule)):
            row.next_run = start
        session.commit()
    assert fire_due(engine) == 1
    (job,) = api.get("/api/v1/jobs").get_json()["items"]
    return schedule, job


def _hooked_job(api, client, runbook: str) -> tuple[dict, str]:
    hook = api.post("/api/v1/webhooks", json={"name": "on-push", "runbook": runbook,
                                               "worker_group": PARKED}).get_json()
    resp = client.post("/api/v1/webhooks/invoke/" + hook["uri"].rsplit("/", 1)[1], data="{}")
    assert resp.status_code == 202, resp.get_json()
    return hook, resp.get_json()["JobIds"][0]


def test_api_names_the_schedule_and_webhook_and_keeps_the_ids(api, client, services):
    api.create_runbook("starters")
    schedule, by_schedule = _scheduled_job(api, services, "starters")
    hook, by_hook = _hooked_job(api, client, "starters")
    by_user = api.start("starters", worker_group=PARKED)
    assert by_user["started_by_name"] == by_user["started_by"] == "user:admin"

    listed = {j["id"]: j for j in api.get("/api/v1/jobs").get_json()["items"]}
    assert listed[by_schedule["id"]]["started_by"] == f"schedule:{schedule['id']}"
    assert listed[by_schedule["id"]]["started_by_name"] == "schedule:nightly"
    assert listed[by_hook]["started_by"] == f"webhook:{hook['id']}"
    assert listed[by_hook]["started_by_name"] == "webhook:on-push"
    one = api.get(f"/api/v1/jobs/{by_hook}").get_json()
    assert one["started_by_name"] == "webhook:on-push"

    assert api.delete("/api/v1/webhooks/on-push").status_code == 204
    gone = api.get(f"/api/v1/jobs/{by_hook}").get_json()
    assert gone["started_by_name"] == gone["started_by"] == f"webhook:{hook['id']}"


def test_portal_shows_the_names(api, client, services):
    api.create_runbook("starters")
    _, by_schedule = _scheduled_job(api, services, "starters")
    sign_in(client)
    for path in ("/jobs", f"/jobs/{by_schedule['id']}", "/runbooks/starters"):
        page = client.get(path).get_data(as_text=True)
        assert "schedule:nightly" in page, path
    rows = client.get("/jobs").get_data(as_text=True)
    assert by_schedule["started_by"] not in rows


def test_cli_shows_the_names(api, services, cli):  # noqa: F811
    api.create_runbook("starters")
    _, by_schedule = _scheduled_job(api, services, "starters")
    listed = cli("job", "list")
    assert listed.returncode == 0, listed.stderr
    assert "schedule:nightly" in listed.stdout
    shown = cli("job", "show", by_schedule["id"][:8])
    assert shown.returncode == 0, shown.stderr
    assert "schedule:nightly" in shown.stdout
