"""Child runbooks: started from inside a job with its token, waited on, stopped with it."""

from __future__ import annotations

import json
import time
import uuid

from smacommon.db import get_engine
from smacommon.services.tokens import new_job_secret

CHILD = ("import smarunbook\n"
         "def main(n: int):\n"
         "    smarunbook.output({'square': n * n})\n"
         "    smarunbook.output('plain line')\n")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _output(api, job_id) -> list[str]:
    return api.get(f"/api/v1/jobs/{job_id}/output").get_data(as_text=True).splitlines()


def _children(api, parent_id) -> list[dict]:
    return [j for j in api.get("/api/v1/jobs?limit=200").get_json()["items"]
            if j["parent_job_id"] == parent_id]


def test_start_and_wait_for_a_child_from_python(api, worker):
    child = api.create_runbook(name=_name("child"), content=CHILD)
    parent = api.run("import json\nfrom smarunbook import start_runbook\n"
                     f"out = start_runbook({child['name']!r}, {{'n': 7}}, wait=True)\n"
                     "print(json.dumps(out))\n", timeout=60)
    assert parent["status"] == "Completed", parent
    assert json.loads(_output(api, parent["id"])[0]) == [{"square": 49}, "plain line"]
    (kid,) = _children(api, parent["id"])
    assert kid["started_by"] == f"job:{parent['id']}" and kid["status"] == "Completed"
    assert kid["runbook_name"] == child["name"]


def test_start_without_waiting_and_from_bash(api, worker):
    child = api.create_runbook(name=_name("child"), content=CHILD)
    parent = api.run("from smarunbook import start_runbook\n"
                     f"print(start_runbook({child['name']!r}, {{'n': 2}}))\n")
    assert parent["status"] == "Completed", parent
    (kid_id,) = _output(api, parent["id"])
    assert api.wait(kid_id)["status"] == "Completed"
    assert api.get(f"/api/v1/jobs/{kid_id}").get_json()["parent_job_id"] == parent["id"]
    bash = api.run(f"start_runbook {child['name']} '{{\"n\": 3}}' --wait\n",
                   runbook_type="bash")
    assert bash["status"] == "Completed", bash
    assert _output(api, bash["id"]) == ['{"square": 9}', "plain line"]


def test_a_failed_child_fails_the_waiting_parent_with_its_reason(api, worker):
    child = api.create_runbook(name=_name("child"), content="raise ValueError('no disk')\n")
    parent = api.run("from smarunbook import start_runbook\n"
                     f"start_runbook({child['name']!r}, wait=True)\n")
    assert parent["status"] == "Failed"
    assert "ChildJobFailed" in parent["exception"] and "no disk" in parent["exception"]
    bad = api.run("from smarunbook import start_runbook\n"
                  "start_runbook('no-such-runbook')\n")
    assert bad["status"] == "Failed" and "no-such-runbook" in bad["exception"]


def test_recursion_is_cut_off_at_the_depth_limit(api, worker):
    name = _name("recurse")
    rb = api.create_runbook(name=name, content=(
        "from smarunbook import start_runbook\n"
        "def main(level: int = 0):\n"
        "    print(level)\n"
        f"    start_runbook({name!r}, {{'level': level + 1}})\n"))
    first = api.start(rb["name"])
    deadline = time.monotonic() + 90
    while True:
        jobs = api.get("/api/v1/jobs?limit=100").get_json()["items"]
        failed = [j for j in jobs if j["status"] == "Failed"]
        if failed:
            break
        assert time.monotonic() < deadline, [j["status"] for j in jobs]
        time.sleep(0.3)
    (last,) = failed
    assert "depth limit of 10" in last["exception"]
    assert _output(api, last["id"]) == ["10"]
    mine = [j for j in jobs if j["runbook_name"] == name]
    assert len(mine) == 11 and api.wait(first["id"])["status"] == "Completed"


def test_stopping_a_parent_stops_the_child_it_waits_on(api, worker):
    child = api.create_runbook(name=_name("slow"), content="import time\ntime.sleep(1000)\n")
    rb = api.create_runbook(content=("from smarunbook import start_runbook\n"
                                     f"start_runbook({child['name']!r}, wait=True)\n"))
    parent = api.start(rb["name"])
    deadline = time.monotonic() + 30
    while not [k for k in _children(api, parent["id"]) if k["status"] == "Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert api.post(f"/api/v1/jobs/{parent['id']}/stop").status_code == 202
    assert api.wait(parent["id"], timeout=20)["status"] == "Stopped"
    (kid,) = _children(api, parent["id"])
    assert api.wait(kid["id"], timeout=20)["status"] == "Stopped"


def test_job_token_sees_only_its_own_children(api, client, services):
    """Runtime job endpoints with a job token from a job row set up by hand."""
    from sqlalchemy.orm import Session

    from smacommon.models import Job, Runbook
    from smacommon.services.tokens import hash_token

    rb = api.create_runbook(content=CHILD)
    other = api.start(rb["name"], {"n": 1}, worker_group="nobody")
    secret = new_job_secret()
    with Session(get_engine(services["database_url"])) as session:
        runbook = session.get(Runbook, uuid.UUID(rb["id"]))
        job = Job(id=uuid.uuid4(), runbook_id=runbook.id, status="Running", parameters={},
                  worker_group="nobody", token_hash=hash_token(secret), depth=0)
        session.add(job)
        session.commit()
        job_id = str(job.id)
    headers = {"Authorization": f"Bearer {secret}"}
    started = client.post("/api/v1/runtime/jobs", headers=headers, json={
        "runbook": rb["name"], "parameters": {"n": 2}, "worker_group": "nobody"})
    assert started.status_code == 201, started.get_json()
    mine = started.get_json()
    assert mine["parent_job_id"] == job_id and mine["started_by"] == f"job:{job_id}"
    assert client.get(f"/api/v1/runtime/jobs/{mine['id']}", headers=headers).status_code == 200
    out = client.get(f"/api/v1/runtime/jobs/{mine['id']}/output", headers=headers)
    assert out.status_code == 200 and out.get_json()["items"] == []
    assert client.get(f"/api/v1/runtime/jobs/{other['id']}", headers=headers) \
        .status_code == 404
    assert client.get("/api/v1/runtime/jobs/not-a-uuid", headers=headers).status_code == 404
    bad = client.post("/api/v1/runtime/jobs", headers=headers,
                      json={"runbook": rb["name"], "parameters": {"n": "x"}})
    assert bad.status_code == 400 and "n" in bad.get_json()["message"]
    # a user's token, even an admin's, is not a job's
    assert client.post("/api/v1/runtime/jobs", headers=api.headers,
                       json={"runbook": rb["name"]}).status_code == 403
