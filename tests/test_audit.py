"""Every change is audited, whatever the door: the portal, the API, a job's token, a webhook,
the CLI on the server; as who made it, in the same transaction as the change."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from smacommon.db import get_engine
from smacommon.models import AuditEvent
from tests.conftest import Api
from tests.test_portal import sign_in

SECRET = "pw-Zq81-never-in-the-audit"


def _token(api, role: str = "author") -> tuple[str, str]:
    """A new API token: (its name, its secret)."""
    name = f"alice-{uuid.uuid4().hex[:6]}"
    resp = api.post("/api/v1/tokens", json={"name": name, "role": role})
    assert resp.status_code == 201, resp.get_json()
    return name, resp.get_json()["token"]


def _events(api, **query) -> list[dict]:
    """Audit events, oldest first."""
    resp = api.get("/api/v1/audit", query_string={"limit": 500, **query})
    assert resp.status_code == 200, resp.get_json()
    return list(reversed(resp.get_json()["items"]))


def _by(api, actor: str) -> list[tuple[str, str]]:
    return [(e["action"], e["target"]) for e in _events(api, actor=actor)]


def test_portal_changes_are_audited_as_the_signed_in_token(client, api):
    name, secret = _token(api)
    csrf = sign_in(client, secret)

    def post(path, **data):
        resp = client.post(path, data={"csrf_token": csrf, **data})
        assert resp.status_code in (200, 302), (path, resp.get_data(as_text=True)[:300])
        return resp

    post("/runbooks/new", name="from-portal", runbook_type="python", content="print(1)\n")
    post("/runbooks/from-portal/edit", content="print(2)\n")
    post("/runbooks/from-portal/publish")
    started = post("/runbooks/from-portal/start", group="nobody-serves-this")
    job_id = started.headers["Location"].rsplit("/", 1)[1]
    post(f"/jobs/{job_id}/stop")
    post("/assets/variables/new", name="Plain", value="1")
    post("/assets/credentials/new", name="Db", username="app", password=SECRET)
    post("/assets/credentials/Db", username="app2", password=SECRET + "2", description="")
    post("/assets/credentials/Db/delete")
    post("/schedules", name="nightly", frequency="Day", interval="1",
         start_time="2030-03-01T09:00", time_zone="UTC", missed="run_once")
    post("/schedules/nightly/link", runbook="from-portal", parameters="")
    post("/schedules/nightly/disable")
    post("/schedules/nightly/delete")
    made = post("/webhooks", name="push", runbook="from-portal", parameters="")
    invoke_token = made.get_data(as_text=True).split("/api/v1/webhooks/invoke/")[1][:43]
    post("/webhooks/push/disable")
    post("/webhooks/push/delete")
    post("/assets/variables/Plain/delete")

    events = _events(api, actor=f"token:{name}")
    assert [(e["action"], e["target"]) for e in events] == [
        ("runbook.create", "/api/v1/runbooks/from-portal"),
        ("runbook.draft", "/api/v1/runbooks/from-portal"),
        ("runbook.publish", "/api/v1/runbooks/from-portal"),
        ("job.start", f"/api/v1/jobs/{job_id}"),
        ("job.stop", f"/api/v1/jobs/{job_id}"),
        ("variable.create", "/api/v1/variables/Plain"),
        ("credential.create", "/api/v1/credentials/Db"),
        ("credential.update", "/api/v1/credentials/Db"),
        ("credential.delete", "/api/v1/credentials/Db"),
        ("schedule.create", "/api/v1/schedules/nightly"),
        ("schedule.link", "/api/v1/schedules/nightly/runbooks/from-portal"),
        ("schedule.update", "/api/v1/schedules/nightly"),
        ("schedule.delete", "/api/v1/schedules/nightly"),
        ("webhook.create", "/api/v1/webhooks/push"),
        ("webhook.update", "/api/v1/webhooks/push"),
        ("webhook.delete", "/api/v1/webhooks/push"),
        ("variable.delete", "/api/v1/variables/Plain"),
    ]
    assert {e["door"] for e in events} == {"portal"}
    assert all(e["client_address"] for e in events)
    assert events[2]["details"] == {"version": 1}
    assert events[3]["details"] == {"runbook": "from-portal", "worker_group": "nobody-serves-this"}
    assert events[7]["details"] == {"fields": ["description", "password", "username"]}
    whole = api.get("/api/v1/audit?limit=500").get_data(as_text=True)
    assert SECRET not in whole and invoke_token not in whole and secret not in whole


def test_api_changes_are_audited_as_the_token(client, api):
    name, secret = _token(api, "admin")
    alice = Api(client, secret)
    actor = f"token:{name}"
    assert alice.post("/api/v1/runbooks", json={"name": "rb", "runbook_type": "python",
                                                "content": "print(1)\n"}).status_code == 201
    assert alice.patch("/api/v1/runbooks/rb", json={"description": "d"}).status_code == 200
    assert alice.post("/api/v1/runbooks/rb/publish").status_code == 201
    test = alice.post("/api/v1/runbooks/rb/draft/test", json={}).status_code
    assert test == 409  # no draft after the publish: refused, so not audited
    job = alice.post("/api/v1/runbooks/rb/start",
                     json={"worker_group": "nobody-serves-this"}).get_json()
    assert alice.post(f"/api/v1/jobs/{job['id']}/stop").status_code == 202
    alice.post("/api/v1/connection-types", json={"name": "Svc", "fields": [
        {"name": "Url"}, {"name": "Key", "is_encrypted": True}]})
    alice.post("/api/v1/connections", json={"name": "Prod", "connection_type": "Svc",
                                            "values": {"Url": "https://x", "Key": SECRET}})
    alice.patch("/api/v1/connections/Prod", json={"values": {"Key": SECRET + "2"}})
    alice.post("/api/v1/schedules", json={"name": "s", "frequency": "Day",
                                          "start_time": "2030-01-01T00:00:00Z"})
    alice.post("/api/v1/schedules/s/runbooks", json={"runbook": "rb", "parameters": {}})
    alice.delete("/api/v1/schedules/s/runbooks/rb")
    assert alice.delete("/api/v1/schedules/s").status_code == 204
    alice.post("/api/v1/webhooks", json={"name": "w", "runbook": "rb"})
    assert alice.delete("/api/v1/webhooks/w").status_code == 204
    alice.put("/api/v1/admin/configuration", json={"job_retention_days": 30})
    made = alice.post("/api/v1/tokens", json={"name": "bob", "role": "reader"}).get_json()
    alice.delete(f"/api/v1/tokens/{made['id']}")
    assert alice.delete("/api/v1/runbooks/rb").status_code == 204

    events = _events(api, actor=actor)
    assert [(e["action"], e["target"]) for e in events] == [
        ("runbook.create", "/api/v1/runbooks/rb"),
        ("runbook.update", "/api/v1/runbooks/rb"),
        ("runbook.publish", "/api/v1/runbooks/rb"),
        ("job.start", f"/api/v1/jobs/{job['id']}"),
        ("job.stop", f"/api/v1/jobs/{job['id']}"),
        ("connection_type.create", "/api/v1/connection-types/Svc"),
        ("connection.create", "/api/v1/connections/Prod"),
        ("connection.update", "/api/v1/connections/Prod"),
        ("schedule.create", "/api/v1/schedules/s"),
        ("schedule.link", "/api/v1/schedules/s/runbooks/rb"),
        ("schedule.unlink", "/api/v1/schedules/s/runbooks/rb"),
        ("schedule.delete", "/api/v1/schedules/s"),
        ("webhook.create", "/api/v1/webhooks/w"),
        ("webhook.delete", "/api/v1/webhooks/w"),
        ("configuration.update", "/api/v1/admin/configuration"),
        ("token.create", f"/api/v1/tokens/{made['id']}"),
        ("token.revoke", f"/api/v1/tokens/{made['id']}"),
        ("runbook.delete", "/api/v1/runbooks/rb"),
    ]
    assert {e["door"] for e in events} == {"api"}
    assert events[7]["details"] == {"fields": ["values"], "values": ["Key"]}
    assert events[14]["details"] == {"job_retention_days": 30}
    assert events[15]["details"] == {"name": "bob", "role": "reader"}
    assert SECRET not in api.get("/api/v1/audit?limit=500").get_data(as_text=True)
    # the filters
    assert [e["action"] for e in _events(api, actor=actor, action="schedule.")] == [
        "schedule.create", "schedule.link", "schedule.unlink", "schedule.delete"]
    assert [e["target"] for e in _events(api, target="/api/v1/webhooks/")] == [
        "/api/v1/webhooks/w", "/api/v1/webhooks/w"]
    assert _events(api, door="portal") == []
    bad = api.get("/api/v1/audit?door=window")
    assert bad.status_code == 400 and "door" in bad.get_json()["errors"], bad.get_json()


def test_a_refused_or_rolled_back_change_leaves_no_event(client, api):
    name, secret = _token(api, "admin")
    alice = Api(client, secret)
    api.create_runbook("good")
    before = _by(api, f"token:{name}")
    # the first start is made (and its event added) before the second is refused: the batch
    # rolls back as a whole, event included
    resp = alice.post("/api/v1/jobs/batch", json={"jobs": [
        {"runbook": "good", "worker_group": "nobody-serves-this"},
        {"runbook": "missing"}]})
    assert resp.status_code == 404 and "No job was started" in resp.get_json()["message"]
    assert alice.post("/api/v1/runbooks", json={"name": "bad name", "runbook_type": "python",
                                                "content": "x"}).status_code == 400
    assert alice.patch("/api/v1/runbooks/good", json={"worker_group": "no way"}) \
        .status_code == 400
    assert alice.post("/api/v1/connection-types", json={"name": "T", "fields": [
        {"name": "a"}]}).status_code == 201
    alice.post("/api/v1/connections", json={"name": "c", "connection_type": "T",
                                            "values": {"a": "1"}})
    assert alice.delete("/api/v1/connection-types/T").status_code == 409
    csrf = sign_in(client, secret)
    refused = client.post("/runbooks/good/discard", data={"csrf_token": csrf})
    assert refused.status_code == 302  # the flash says why; nothing changed
    assert _by(api, f"token:{name}") == before + [
        ("connection_type.create", "/api/v1/connection-types/T"),
        ("connection.create", "/api/v1/connections/c")]
    assert api.get("/api/v1/jobs").get_json()["items"] == []


def test_purge_records_one_event_with_the_counts(api, services):
    api.create_runbook("old")
    jobs = [api.start("old", worker_group="nobody-serves-this")["id"] for _ in range(3)]
    for job_id in jobs:
        assert api.post(f"/api/v1/jobs/{job_id}/stop").status_code == 202
    engine = get_engine(services["database_url"])
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET end_time = :t"),
                     {"t": "2000-01-01 00:00:00.000000" if engine.dialect.name == "sqlite"
                      else "2000-01-01"})
    before = len(_events(api))
    resp = api.post("/api/v1/admin/purge-jobs", json={"older_than_days": 7})
    assert resp.status_code == 200 and resp.get_json()["jobs_deleted"] == 3
    events = _events(api)
    assert len(events) == before + 1
    assert events[-1]["action"] == "jobs.purge" and events[-1]["door"] == "api"
    assert events[-1]["actor"] == "admin"
    assert events[-1]["details"] == {"older_than_days": 7, "jobs_deleted": 3,
                                     "records_deleted": 0}


@pytest.mark.e2e
def test_a_job_changing_things_is_audited_as_the_job(api, worker):
    api.post("/api/v1/variables", json={"name": "Counter", "value": 1})
    api.post("/api/v1/variables", json={"name": "Hidden", "value": "x", "is_encrypted": True})
    child = api.create_runbook(content="print('child')\n")
    job = api.run("import automationassets, smarunbook\n"
                  "automationassets.set_automation_variable('Counter', 2)\n"
                  f"automationassets.set_automation_variable('Hidden', {SECRET!r})\n"
                  f"print(smarunbook.start_runbook({child['name']!r}, wait=True))\n")
    assert job["status"] == "Completed", job
    events = _events(api, actor=f"job:{job['id']}")
    assert [(e["action"], e["target"], e["door"]) for e in events[:2]] == [
        ("variable.update", "/api/v1/variables/Counter", "job"),
        ("variable.update", "/api/v1/variables/Hidden", "job")]
    assert events[2]["action"] == "job.start" and events[2]["door"] == "job"
    assert events[2]["details"]["runbook"] == child["name"]
    assert events[0]["details"] == {"fields": ["value"]} and events[0]["client_address"]
    assert SECRET not in api.get("/api/v1/audit?limit=500").get_data(as_text=True)


def _sma(*args, env):
    return subprocess.run([sys.executable, "-m", "smacli.main", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def test_the_cli_on_the_server_is_a_door_too(tmp_path):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    env = {"SMA_DATA_DIR": str(tmp_path), "SMA_DATABASE_URL": f"sqlite:///{tmp_path}/n.db",
           "SMA_ENCRYPTION_KEYS": key}
    made = _sma("token", "create", "--name", "first", "--role", "admin", env=env)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.rsplit(" ", 1)[-1].strip()
    rotated = _sma("keys", "rotate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    with Session(get_engine(env["SMA_DATABASE_URL"])) as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.time)).all()
    assert [(e.action, e.door) for e in events] == [("token.create", "cli"),
                                                     ("keys.rotate", "cli")]
    import getpass
    import socket

    assert {e.actor for e in events} == {f"cli:{getpass.getuser()}"}
    assert events[0].client_address == socket.gethostname()[:64]
    assert events[0].details == {"name": "first", "role": "admin"}
    assert events[1].details == {"secrets": 0}
    assert secret not in str([e.details for e in events])


def test_a_change_with_no_actor_is_refused_not_left_unaudited(services):
    from smacommon.services.audit import NoActor
    from smacommon.services.runbooks import create_runbook

    with Session(get_engine(services["database_url"])) as session:
        with pytest.raises(NoActor, match="act_as"):
            create_runbook(session, name="ghost", runbook_type="python", content="x = 1\n",
                           content_limit=1000)
        session.rollback()


def test_sma_audit_shows_the_door_and_filters_by_it(client, api, services, tmp_path):
    from tests.conftest import ADMIN_TOKEN

    name, secret = _token(api)
    csrf = sign_in(client, secret)
    client.post("/assets/variables/new", data={"csrf_token": csrf, "name": "Seen", "value": "1"})
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "SMA_URL": services["api_url"], "SMA_TOKEN": ADMIN_TOKEN}

    def sma(*args):
        return subprocess.run([sys.executable, "-m", "smacli.main", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    shown = sma("audit", "--door", "portal")
    assert shown.returncode == 0, shown.stderr
    (line,) = [ln for ln in shown.stdout.splitlines() if "variable.create" in ln]
    assert f"token:{name}" in line and "portal" in line and "/api/v1/variables/Seen" in line
    assert "DOOR" in shown.stdout
    assert "token.create" not in sma("audit", "--door", "portal").stdout  # that was the API
    assert "token.create" in sma("audit", "--actor", "admin").stdout
    bad = sma("audit", "--door", "window")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
