"""Every operation of the API, called for real (a real worker runs the jobs), each answer
checked against the OpenAPI document: the document and what sma answers cannot drift apart."""

from __future__ import annotations

import base64
import uuid
from urllib.parse import urlsplit

import pytest

from tests.conftest import wait_for
from tests.contract import CheckedApi, Contract
from tests.modulefiles import upload
from tests.pkgindex import make_wheel
from tests.test_assets import _self_signed

SLEEPER = "import os, time\nprint(os.environ['SMA_JOB_TOKEN'], flush=True)\ntime.sleep(120)\n"


@pytest.fixture
def contract(client):
    return Contract(client.get("/api/openapi.json").get_json())


@pytest.fixture
def checked(client, contract):
    return CheckedApi(client, contract)


def ok(resp, status=200):
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
    return resp.get_json(silent=True)


def _runbooks_and_jobs(api: CheckedApi) -> dict:
    rb = "/api/v1/runbooks/flow"
    ok(api.post("/api/v1/runbooks", json={
        "name": "flow", "runbook_type": "python", "tags": ["t"],
        "content": "def main(name: str, count: int = 2):\n    print(name * count)\n"}), 201)
    ok(api.get("/api/v1/runbooks?type=python&tag=t"))
    ok(api.get(rb))
    ok(api.patch(rb, json={"description": "d", "log_verbose": True}))
    ok(api.get(f"{rb}/draft"))
    ok(api.put(f"{rb}/draft", json={"content": "def main(name: str):\n    print(name)\n"}))
    test = ok(api.post(f"{rb}/draft/test?wait=30", json={"parameters": {"name": "x"}}), 201)
    assert test["status"] == "Completed", test
    ok(api.post(f"{rb}/publish"), 201)
    ok(api.get(f"{rb}/versions"))
    ok(api.get(f"{rb}/versions/1"))
    ok(api.get(f"{rb}/draft"), 404)  # publishing took it
    ok(api.put(f"{rb}/draft", json={"content": "print(1)\n"}))
    ok(api.delete(f"{rb}/draft"), 204)
    ok(api.get(f"{rb}/draft"), 404)
    job = ok(api.post(f"{rb}/start", json={"parameters": {"name": "y"}, "wait": 30}), 201)
    assert job["status"] == "Completed", job
    api.wait(test["id"])
    batch = ok(api.post("/api/v1/jobs/batch", json={"jobs": [{"runbook": "flow",
                                                              "parameters": {"name": "z"}}]}),
               201)
    api.wait(batch["items"][0]["id"])
    ok(api.get("/api/v1/jobs?runbook=flow&status=Completed&status=New,Running"))
    ok(api.get(f"/api/v1/jobs/{job['id']}"))
    ok(api.get(f"/api/v1/jobs/{job['id']}/streams?stream=Output&stream=Error"))
    ok(api.get(f"/api/v1/jobs/{job['id']}/output"))
    ok(api.get(f"/api/v1/jobs/{job['id']}/events?timeout=1"))
    ok(api.post(f"/api/v1/jobs/{job['id']}/stop"), 409)  # it has finished
    ok(api.get(f"/api/v1/jobs/{uuid.uuid4()}"), 404)
    ok(api.post("/api/v1/runbooks", json={"name": "x", "colour": "red"}), 400)
    return job


def _control(api: CheckedApi) -> None:
    api.create_runbook("sleeper", content=SLEEPER)
    job = api.start("sleeper")
    wait_for(lambda: api.get(f"/api/v1/jobs/{job['id']}").get_json()["status"] == "Running",
             what="the sleeper running")
    ok(api.post(f"/api/v1/jobs/{job['id']}/suspend"), 202)
    api.wait(job["id"], statuses=("Suspended",))
    ok(api.post(f"/api/v1/jobs/{job['id']}/resume"), 202)
    ok(api.post(f"/api/v1/jobs/{job['id']}/stop"), 202)
    api.wait(job["id"], statuses=("Stopped",))


def _assets(api: CheckedApi, tmp_path) -> None:
    for kind, body, change in (
            ("variables", {"name": "v", "value": {"a": [1]}}, {"value": 2}),
            ("credentials", {"name": "c", "username": "u", "password": "p"}, {"password": "q"})):
        ok(api.post(f"/api/v1/{kind}", json=body), 201)
        ok(api.get(f"/api/v1/{kind}"))
        ok(api.get(f"/api/v1/{kind}/{body['name']}"))
        ok(api.patch(f"/api/v1/{kind}/{body['name']}", json=change))
    ok(api.post("/api/v1/connection-types", json={
        "name": "ct", "fields": [{"name": "host"}, {"name": "key", "is_encrypted": True}]}), 201)
    ok(api.get("/api/v1/connection-types"))
    ok(api.get("/api/v1/connection-types/ct"))
    ok(api.post("/api/v1/connections", json={"name": "conn", "connection_type": "ct",
                                             "values": {"host": "h", "key": "k"}}), 201)
    ok(api.get("/api/v1/connections"))
    ok(api.get("/api/v1/connections/conn"))
    ok(api.patch("/api/v1/connections/conn", json={"description": "d"}))
    _, _, pem = _self_signed(tmp_path, None)
    ok(api.post("/api/v1/certificates", json={
        "name": "cert", "data": base64.b64encode(pem).decode(), "exportable": True}), 201)
    ok(api.get("/api/v1/certificates"))
    ok(api.get("/api/v1/certificates/cert"))


def _runtime(api: CheckedApi, contract: Contract) -> None:
    """A running job's own token reaches the assets and starts a child."""
    api.create_runbook("runtime", content=SLEEPER)
    job = api.start("runtime")
    token = wait_for(lambda: next(iter(r["text"] for r in api.records(job["id"])), None),
                     what="the job's token in its output")
    runtime = CheckedApi(api.client, contract, token=token)
    ok(runtime.get("/api/v1/runtime/variables/v"))
    ok(runtime.put("/api/v1/runtime/variables/v", json={"value": "new"}))
    ok(runtime.get("/api/v1/runtime/credentials/c"))
    ok(runtime.get("/api/v1/runtime/connections/conn"))
    ok(runtime.get("/api/v1/runtime/certificates/cert"))
    ok(runtime.get("/api/v1/runtime/job-keys"))
    ok(runtime.get("/api/v1/runtime/id-token?audience=sts.amazonaws.com&lifetime=900"))
    ok(runtime.get("/api/v1/runtime/id-token?audience=a%20b"), 400)
    lib = ok(upload(api, b"# version: 1.0\ngreet() { :; }\n", "flowlib.sh"), 201)
    ok(runtime.get("/api/v1/runtime/modules?type=bash"))
    ok(runtime.get(f"/api/v1/runtime/modules/{lib['sha256']}"))
    child = ok(runtime.post("/api/v1/runtime/jobs", json={
        "runbook": "flow", "parameters": {"name": "child"}}), 201)
    wait_for(lambda: ok(runtime.get(f"/api/v1/runtime/jobs/{child['id']}"))["status"]
             == "Completed", what="the child completed")
    ok(runtime.get(f"/api/v1/runtime/jobs/{child['id']}/output"))
    ok(api.post(f"/api/v1/jobs/{job['id']}/stop"), 202)
    api.wait(job["id"], statuses=("Stopped",))


def _schedules_and_webhooks(api: CheckedApi) -> None:
    ok(api.post("/api/v1/schedules", json={
        "name": "s", "frequency": "Month", "monthly_occurrences": [
            {"occurrence": "First", "day": "Monday"}], "time_zone": "Europe/Paris"}), 201)
    ok(api.get("/api/v1/schedules"))
    ok(api.get("/api/v1/schedules/s"))
    ok(api.patch("/api/v1/schedules/s", json={"enabled": False}))
    ok(api.post("/api/v1/schedules/s/runbooks", json={"runbook": "flow",
                                                      "parameters": {"name": "s"}}), 201)
    ok(api.get("/api/v1/schedules/s/runbooks"))
    ok(api.get("/api/v1/runbooks/flow/schedules"))
    ok(api.delete("/api/v1/schedules/s/runbooks/flow"), 204)
    ok(api.delete("/api/v1/schedules/s"), 204)
    hook = ok(api.post("/api/v1/webhooks", json={"name": "w", "runbook": "flow",
                                                 "parameters": {"name": "w"}}), 201)
    ok(api.get("/api/v1/webhooks"))
    ok(api.get("/api/v1/webhooks/w"))
    ok(api.patch("/api/v1/webhooks/w", json={"description": "d"}))
    invoked = ok(api.post(urlsplit(hook["uri"]).path, json={"a": 1}), 202)
    for job_id in invoked["JobIds"]:
        api.wait(job_id)
    ok(api.post("/api/v1/webhooks/invoke/not-a-token", json={}), 404)
    ok(api.delete("/api/v1/webhooks/w"), 204)


def _service(api: CheckedApi) -> None:
    token = ok(api.post("/api/v1/tokens", json={"name": "t", "role": "reader"}), 201)
    ok(api.get("/api/v1/tokens"))
    ok(api.delete(f"/api/v1/tokens/{token['id']}"))
    binding = ok(api.post("/api/v1/role-bindings", json={
        "principal": "token:t", "role": "operator", "scope_type": "runbook",
        "scope_value": "flow"}), 201)
    ok(api.post("/api/v1/role-bindings", json={"principal": "token:t", "role": "operator",
                                              "scope_type": "runbook", "scope_value": "x"}), 400)
    ok(api.get("/api/v1/role-bindings?principal=token:t"))
    ok(api.get(f"/api/v1/role-bindings/{binding['id']}"))
    ok(api.delete(f"/api/v1/role-bindings/{binding['id']}"), 204)
    ok(api.get(f"/api/v1/role-bindings/{binding['id']}"), 404)
    mine = ok(api.post("/api/v1/me/tokens", json={"name": "laptop", "role": "reader"}), 201)
    ok(api.post("/api/v1/me/tokens", json={"name": "laptop"}), 409)
    ok(api.get("/api/v1/me/tokens"))
    ok(api.delete(f"/api/v1/me/tokens/{mine['id']}"))
    # directory sign-in is off here (tests/test_ldap.py signs in against a real slapd)
    ok(api.post("/api/v1/sessions", json={"username": "alice", "password": "x"}), 404)
    ok(api.get("/api/v1/audit?door=api"))
    ok(api.get("/api/v1/workers"))
    ok(api.get("/api/v1/admin/configuration"))
    ok(api.put("/api/v1/admin/configuration", json={"job_retention_days": 30}))
    ok(api.patch("/api/v1/admin/configuration", json={"max_job_records": None}))
    ok(api.post("/api/v1/admin/purge-jobs", json={"older_than_days": 36500}))
    ok(api.get("/health"))
    ok(api.get("/health/ready"))
    ok(api.get("/.well-known/openid-configuration"))
    ok(api.get("/.well-known/jwks"))
    assert api.get("/metrics").status_code == 200


def _modules(api: CheckedApi, tmp_path) -> None:
    wheel = make_wheel(tmp_path / "wheels", "flow-tools", "1.0")
    ok(upload(api, wheel.read_bytes(), wheel.name), 201)
    ok(upload(api, wheel.read_bytes(), wheel.name), 200)  # the same file again
    ok(upload(api, b"f() { :; }\n", "lib.sh"), 400)  # no version
    ok(api.get("/api/v1/modules?type=python&name=flow"))
    ok(api.get("/api/v1/modules/flow-tools/1.0"))
    ok(api.get("/api/v1/modules/flow-tools/1.0/content"))
    ok(api.get("/api/v1/modules/simple/"))
    ok(api.get("/api/v1/modules/simple/flow-tools/"))
    ok(api.get(f"/api/v1/modules/simple/flow-tools/{wheel.name}"))
    ok(api.delete("/api/v1/modules/flow-tools/1.0"), 204)
    ok(api.get("/api/v1/modules/flow-tools/1.0"), 404)


def _deletes(api: CheckedApi) -> None:
    for path in ("/api/v1/variables/v", "/api/v1/credentials/c", "/api/v1/connections/conn",
                 "/api/v1/connection-types/ct", "/api/v1/certificates/cert",
                 "/api/v1/runbooks/flow"):
        ok(api.delete(path), 204)


def test_every_operation_answers_as_documented(checked, contract, worker, tmp_path):
    _runbooks_and_jobs(checked)
    _control(checked)
    _assets(checked, tmp_path)
    _runtime(checked, contract)
    _schedules_and_webhooks(checked)
    _service(checked)
    _modules(checked, tmp_path)
    _deletes(checked)
    documented = {op["operationId"] for item in contract.spec["paths"].values()
                  for method, op in item.items() if method != "parameters"}
    assert documented - contract.checked == set()
