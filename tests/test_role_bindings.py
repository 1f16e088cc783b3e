"""Permissions per runbook: role bindings, tried as the bound caller would try to get past them."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Api

SCRIPT = "def main(n: int = 1):\n    print('n', n)\n"


def _token(api, role: str, name: str | None = None) -> tuple[str, Api]:
    name = name or f"t-{uuid.uuid4().hex[:8]}"
    resp = api.post("/api/v1/tokens", json={"name": name, "role": role})
    assert resp.status_code == 201, resp.get_json()
    return f"token:{name}", Api(api.client, resp.get_json()["token"])


def _bind(api, principal: str, role: str, scope_type: str, scope_value=None) -> dict:
    resp = api.post("/api/v1/role-bindings", json={
        "principal": principal, "role": role, "scope_type": scope_type,
        "scope_value": scope_value})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


@pytest.fixture
def estate(api):
    """Two db runbooks, two others, a job of each (never run: no worker), and an operator
    token with nothing but a binding over the tag db."""
    names = {"db1": ["db"], "db2": ["db", "prod"], "web1": ["web"], "misc": []}
    jobs = {}
    for name, tags in names.items():
        api.create_runbook(name, content=SCRIPT, tags=tags)
        jobs[name] = api.start(name)["id"]
    principal, op = _token(api, "none")
    _bind(api, principal, "operator", "tag", "db")
    return jobs, op


def _names(page: dict) -> set[str]:
    return {item["name"] for item in page["items"]}


def test_lists_hold_only_the_bound_runbooks_and_their_jobs(api, estate):
    jobs, op = estate
    assert _names(op.get("/api/v1/runbooks").get_json()) == {"db1", "db2"}
    listed = op.get("/api/v1/jobs").get_json()["items"]
    assert {j["id"] for j in listed} == {jobs["db1"], jobs["db2"]}
    # the admin still sees everything
    assert _names(api.get("/api/v1/runbooks").get_json()) == {"db1", "db2", "web1", "misc"}


def test_paging_by_cursor_never_leaks(api, estate):
    jobs, op = estate
    for _ in range(5):
        api.start("web1")
        api.start("db1")
    seen, cursor = [], None
    while True:
        page = op.get("/api/v1/jobs", query_string={"limit": 2, **(
            {"cursor": cursor} if cursor else {})}).get_json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 7 and {j["runbook_name"] for j in seen} == {"db1", "db2"}
    first = op.get("/api/v1/runbooks", query_string={"limit": 1}).get_json()
    second = op.get("/api/v1/runbooks", query_string={
        "limit": 1, "cursor": first["next_cursor"]}).get_json()
    assert _names(first) | _names(second) == {"db1", "db2"} and second["next_cursor"] is None


@pytest.mark.parametrize("method,path", [
    ("get", "/api/v1/runbooks/web1"),
    ("get", "/api/v1/runbooks/misc/versions"),
    ("post", "/api/v1/runbooks/web1/start"),
    ("get", "/api/v1/jobs?runbook=web1"),
])
def test_runbooks_outside_the_binding_are_not_there(estate, method, path):
    _, op = estate
    resp = getattr(op, method)(path, **({"json": {}} if method == "post" else {}))
    assert resp.status_code == 404, resp.get_json()
    assert "web1" in resp.get_json()["message"] or "misc" in resp.get_json()["message"]


@pytest.mark.parametrize("action", ["", "/output", "/streams", "/events?timeout=1", "/stop",
                                    "/suspend", "/resume"])
def test_jobs_outside_the_binding_are_not_there(estate, action):
    jobs, op = estate
    call = op.post if action in ("/stop", "/suspend", "/resume") else op.get
    for key in (jobs["web1"], jobs["misc"][:8]):  # by id, and by the short id
        resp = call(f"/api/v1/jobs/{key}{action}")
        assert resp.status_code == 404, (action, resp.get_data(as_text=True))
        message = resp.get_json()["message"]  # what a job that never was gets
        assert "not found" in message or message == f"No job id starts with {key!r}."


def test_the_bound_runbooks_can_be_started_read_and_stopped(api, estate):
    jobs, op = estate
    job = op.start("db2", {"n": 3})
    assert job["runbook_name"] == "db2" and job["started_by"].startswith("user:token:")
    assert op.get(f"/api/v1/jobs/{job['id']}").status_code == 200
    assert op.get(f"/api/v1/jobs/{jobs['db1']}/output").status_code == 200
    # found (a worker of another test may have run it meanwhile: then 409, its status)
    assert op.post(f"/api/v1/jobs/{jobs['db1']}/stop").status_code in (202, 409)
    batch = op.post("/api/v1/jobs/batch", json={"jobs": [{"runbook": "db1"},
                                                          {"runbook": "web1"}]})
    assert batch.status_code == 404
    # an operator binding is no author's: the db runbooks cannot be changed
    assert op.patch("/api/v1/runbooks/db1", json={"description": "x"}).status_code == 403


def test_what_is_not_a_runbooks_needs_the_global_role(estate):
    _, op = estate
    for path in ("/api/v1/variables", "/api/v1/workers", "/api/v1/tokens",
                 "/api/v1/role-bindings", "/api/v1/audit"):
        resp = op.get(path)
        assert resp.status_code == 403, path


def test_webhooks_and_schedules_inherit_the_scope(api, estate):
    _, op = estate
    principal, author = _token(api, "reader")
    _bind(api, principal, "author", "tag", "db")
    for name, runbook in (("hook-db", "db1"), ("hook-web", "web1")):
        assert api.post("/api/v1/webhooks", json={"name": name, "runbook": runbook}) \
            .status_code == 201
    created = author.post("/api/v1/webhooks", json={"name": "mine", "runbook": "web1"})
    assert created.status_code == 404
    assert author.post("/api/v1/webhooks", json={"name": "mine", "runbook": "db1"}) \
        .status_code == 201
    assert {h["name"] for h in op.get("/api/v1/webhooks").get_json()["items"]} == \
        {"hook-db", "mine"}
    assert op.get("/api/v1/webhooks/hook-web").status_code == 404
    assert author.delete("/api/v1/webhooks/hook-web").status_code == 404

    when = {"frequency": "Day", "start_time": "2030-01-01T00:00:00Z"}
    for name, runbook in (("s-db", "db1"), ("s-web", "web1"), ("s-both", "db2")):
        assert api.post("/api/v1/schedules", json={"name": name, **when}).status_code == 201
        assert api.post(f"/api/v1/schedules/{name}/runbooks",
                        json={"runbook": runbook}).status_code == 201
    api.post("/api/v1/schedules/s-both/runbooks", json={"runbook": "web1"})
    assert {s["name"] for s in op.get("/api/v1/schedules").get_json()["items"]} == \
        {"s-db", "s-both"}
    assert op.get("/api/v1/schedules/s-web").status_code == 404
    links = op.get("/api/v1/schedules/s-both/runbooks").get_json()["items"]
    assert [link["runbook"] for link in links] == ["db2"]
    # a bound author links only the bound runbooks, and changes only wholly bound schedules
    assert author.post("/api/v1/schedules", json={"name": "s-new", **when}).status_code == 201
    assert author.post("/api/v1/schedules/s-new/runbooks",
                       json={"runbook": "web1"}).status_code == 404
    assert author.post("/api/v1/schedules/s-new/runbooks",
                       json={"runbook": "db1"}).status_code == 201
    assert author.delete("/api/v1/schedules/s-both").status_code == 403
    assert author.delete("/api/v1/schedules/s-web").status_code == 404
    assert author.delete("/api/v1/schedules/s-db").status_code == 204
    # its new runbooks must fall under the binding
    assert author.post("/api/v1/runbooks", json={"name": "n1", "runbook_type": "python",
                                                 "content": SCRIPT}).status_code == 403
    assert author.post("/api/v1/runbooks", json={"name": "n2", "runbook_type": "python",
                                                 "content": SCRIPT, "tags": ["db"]}
                       ).status_code == 201
    # a global reader reads everything still, and changes only the bound runbooks
    assert author.get("/api/v1/runbooks/web1").status_code == 200
    for method, path in (("post", "/api/v1/runbooks/web1/publish"),
                         ("post", "/api/v1/runbooks/web1/draft/test"),
                         ("put", "/api/v1/runbooks/web1/draft"),
                         ("delete", "/api/v1/runbooks/web1")):
        body = {"content": SCRIPT} if method == "put" else {}
        assert getattr(author, method)(path, json=body).status_code == 404, path
    assert author.put("/api/v1/runbooks/db1/draft", json={"content": SCRIPT}).status_code == 200
    assert author.post("/api/v1/runbooks/db1/publish").status_code == 201


def test_a_runbook_binding(api, estate):
    principal, one = _token(api, "none")
    binding = _bind(api, principal, "operator", "runbook", "web1")
    assert binding["runbook_name"] == "web1" and binding["scope_value"] != "web1"
    assert _names(one.get("/api/v1/runbooks").get_json()) == {"web1"}
    assert one.post("/api/v1/runbooks/web1/start", json={}).status_code == 201
    assert one.post("/api/v1/runbooks/db1/start", json={}).status_code == 404
    # a token with no binding and the role none reaches nothing
    _, nobody = _token(api, "none")
    assert nobody.get("/api/v1/runbooks").status_code == 403


def test_a_binding_over_everything_lifts_the_global_role(api, estate):
    principal, reader = _token(api, "reader")
    assert reader.post("/api/v1/runbooks/web1/start", json={}).status_code == 403
    binding = _bind(api, principal, "operator", "everything")
    assert reader.post("/api/v1/runbooks/web1/start", json={}).status_code == 201
    assert api.delete(f"/api/v1/role-bindings/{binding['id']}").status_code == 204
    assert reader.post("/api/v1/runbooks/web1/start", json={}).status_code == 403


def test_bindings_are_managed_by_admins_only(api, estate):
    _, op = estate
    _, author = _token(api, "author")
    body = {"principal": "token:x", "role": "reader", "scope_type": "everything"}
    for caller in (op, author):
        assert caller.get("/api/v1/role-bindings").status_code == 403
        assert caller.post("/api/v1/role-bindings", json=body).status_code == 403
    created = _bind(api, "group:cn=dba,ou=groups,dc=example,dc=org", "reader", "tag", "db")
    listed = api.get("/api/v1/role-bindings",
                     query_string={"principal": created["principal"]}).get_json()["items"]
    assert [b["id"] for b in listed] == [created["id"]]
    assert created["created_by"] == "admin"
    assert api.get(f"/api/v1/role-bindings/{created['id']}").get_json() == created
    assert author.delete(f"/api/v1/role-bindings/{created['id']}").status_code == 403
    assert api.delete(f"/api/v1/role-bindings/{created['id']}").status_code == 204
    assert api.get(f"/api/v1/role-bindings/{created['id']}").status_code == 404
    assert api.get("/api/v1/role-bindings/nope").status_code == 404
    actions = {e["action"] for e in api.get("/api/v1/audit").get_json()["items"]}
    assert {"role_binding.create", "role_binding.delete"} <= actions


@pytest.mark.parametrize("body,field,words", [
    ({"role": "owner", "scope_type": "everything"}, "role", "Unknown role 'owner'"),
    ({"role": "none", "scope_type": "everything"}, "role", "Unknown role 'none'"),
    ({"role": "reader", "scope_type": "folder"}, "scope_type", "Unknown scope type"),
    ({"role": "reader", "scope_type": "runbook", "scope_value": "ghost"}, "scope_value",
     "Runbook 'ghost' not found"),
    ({"role": "reader", "scope_type": "tag"}, "scope_value", "needs scope_value"),
    ({"role": "reader", "scope_type": "everything", "scope_value": "db"}, "scope_value",
     "takes no scope_value"),
    ({"role": "reader", "scope_type": "tag", "scope_value": "db", "principal": "alice"},
     "principal", "token:<token name>"),
    ({"role": "reader", "scope_type": "tag", "scope_value": "db", "extra": 1}, "extra", ""),
])
def test_bad_bindings_are_refused_saying_why(api, body, field, words):
    resp = api.post("/api/v1/role-bindings", json={"principal": "token:ops", **body})
    assert resp.status_code == 400, resp.get_json()
    error = resp.get_json()
    assert field in error["errors"] and words in error["message"] + str(error["errors"])
