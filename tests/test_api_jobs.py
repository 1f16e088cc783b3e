"""Starting jobs and reading them through the API, without running them."""

from __future__ import annotations

import pytest

PY = ("def main(name: str, count: int = 2, ratio: float = 0.5, loud: bool = False,\n"
      "         items: list = None, opts: dict = None):\n    print(name)\n")


def test_start_returns_new_job_at_once(api):
    api.create_runbook("starter", content=PY)
    job = api.start("starter", {"name": "x", "count": "3"})
    assert job["status"] == "New"
    assert job["runbook_name"] == "starter"
    assert job["runbook_version"] == 1
    assert job["parameters"] == {"name": "x", "count": 3}
    assert job["started_by"].startswith("user:")
    assert job["worker_group"] == "default"
    assert api.get(f"/api/v1/jobs/{job['id']}").get_json()["id"] == job["id"]


def test_start_by_id_and_worker_group(api):
    rb = api.create_runbook("byid", content=PY)
    job = api.start(rb["id"], {"name": "x"}, worker_group="linux")
    assert job["worker_group"] == "linux"


def test_start_unpublished_is_409(api):
    api.create_runbook("draftonly", content=PY, publish=False)
    resp = api.post("/api/v1/runbooks/draftonly/start", json={"parameters": {"name": "x"}})
    assert resp.status_code == 409
    assert "publish" in resp.get_json()["message"]


@pytest.mark.parametrize("parameters, name, fragment", [
    ({"name": "x", "colour": "red"}, "colour", "Unknown parameter colour"),
    ({}, "name", "Missing mandatory parameter name"),
    ({"name": "x", "count": "many"}, "count", "must be an integer"),
    ({"name": "x", "count": True}, "count", "must be an integer"),
    ({"name": "x", "ratio": "abc"}, "ratio", "must be a number"),
    ({"name": "x", "loud": "perhaps"}, "loud", "must be a boolean"),
    ({"name": "x", "items": {"a": 1}}, "items", "must be a list"),
    ({"name": "x", "opts": [1]}, "opts", "must be an object"),
    ({"name": ["x"]}, "name", "must be a string"),
])
def test_bad_parameters_are_400_naming_the_parameter(api, parameters, name, fragment):
    api.create_runbook("params", content=PY)
    resp = api.post("/api/v1/runbooks/params/start", json={"parameters": parameters})
    assert resp.status_code == 400, resp.get_json()
    body = resp.get_json()
    assert fragment in body["message"]
    assert name in body["errors"]["parameters"]


def test_parameters_must_be_an_object(api):
    api.create_runbook("params", content=PY)
    resp = api.post("/api/v1/runbooks/params/start", json={"parameters": ["x"]})
    assert resp.status_code == 400
    assert "object" in resp.get_json()["message"]


def test_typed_values_are_kept(api):
    api.create_runbook("typed", content=PY)
    params = {"name": "x", "count": 4, "ratio": 1.5, "loud": "true", "items": [1, "a", None],
              "opts": {"k": [1, 2]}}
    job = api.start("typed", params)
    assert job["parameters"] == {**params, "loud": True}


def test_unknown_job_is_404(api):
    for path in ("/api/v1/jobs/2b1b7f9e-3a53-4c53-9d3d-2f1d9c0a1a11",
                 "/api/v1/jobs/not-a-uuid",
                 "/api/v1/jobs/2b1b7f9e-3a53-4c53-9d3d-2f1d9c0a1a11/streams",
                 "/api/v1/jobs/2b1b7f9e-3a53-4c53-9d3d-2f1d9c0a1a11/output"):
        resp = api.get(path)
        assert resp.status_code == 404, path
        assert resp.get_json()["message"]


def test_list_jobs_filters_and_keyset_paging(api):
    api.create_runbook("a", content=PY)
    api.create_runbook("b", content=PY)
    # for a group no worker serves: the session worker, started by an earlier test, would
    # run them, and they must stay New here
    ids = [api.start("a" if i % 2 else "b", {"name": str(i)}, worker_group="nobody")["id"]
           for i in range(7)]
    page = api.get("/api/v1/jobs?limit=3").get_json()
    seen = [j["id"] for j in page["items"]]
    while page["next_cursor"]:
        page = api.get("/api/v1/jobs", query_string={"limit": 3,
                                                     "cursor": page["next_cursor"]}).get_json()
        seen += [j["id"] for j in page["items"]]
    assert seen == list(reversed(ids))  # newest first, every job once
    only_a = api.get("/api/v1/jobs?runbook=a").get_json()["items"]
    assert {j["runbook_name"] for j in only_a} == {"a"} and len(only_a) == 3
    assert len(api.get("/api/v1/jobs?status=New").get_json()["items"]) == 7
    assert api.get("/api/v1/jobs?status=Completed,Failed").get_json()["items"] == []
    first = api.get(f"/api/v1/jobs/{ids[0]}").get_json()["created_at"]
    last = api.get(f"/api/v1/jobs/{ids[-1]}").get_json()["created_at"]
    since = api.get("/api/v1/jobs", query_string={"since": last}).get_json()["items"]
    assert [j["id"] for j in since] == [ids[-1]]
    until = api.get("/api/v1/jobs", query_string={"until": first}).get_json()["items"]
    assert until == []


@pytest.mark.parametrize("query, field", [
    ("status=Sleeping", "status"),
    ("limit=0", "limit"),
    ("limit=abc", "limit"),
    ("since=yesterday", "since"),
    ("cursor=@@@", "cursor"),
    ("colour=red", "colour"),
])
def test_list_jobs_bad_query_is_400(api, query, field):
    resp = api.get(f"/api/v1/jobs?{query}")
    assert resp.status_code == 400, resp.get_json()
    body = resp.get_json()
    assert body["message"]
    assert field in body.get("errors", {}) or field in body["message"]


def test_list_jobs_unknown_runbook_is_404(api):
    assert api.get("/api/v1/jobs?runbook=ghost").status_code == 404


def test_test_job_runs_the_draft(api):
    api.create_runbook("tested", content=PY, publish=False)
    resp = api.post("/api/v1/runbooks/tested/draft/test", json={"parameters": {"name": "x"}})
    assert resp.status_code == 201
    job = resp.get_json()
    assert job["is_test"] is True and job["runbook_version"] is None
    assert api.get("/api/v1/jobs?is_test=true").get_json()["items"][0]["id"] == job["id"]
    assert api.get("/api/v1/jobs?is_test=false").get_json()["items"] == []


def test_test_of_broken_draft_is_400(api):
    api.create_runbook("brokentest", content="def main(:\n", publish=False)
    resp = api.post("/api/v1/runbooks/brokentest/draft/test", json={})
    assert resp.status_code == 400
    assert "line 1" in resp.get_json()["message"]


def test_streams_bad_query_is_400(api):
    api.create_runbook("s", content=PY)
    job = api.start("s", {"name": "x"})
    resp = api.get(f"/api/v1/jobs/{job['id']}/streams?stream=Shouting")
    assert resp.status_code == 400
    resp = api.get(f"/api/v1/jobs/{job['id']}/streams?after_seq=-1")
    assert resp.status_code == 400


def test_delete_runbook_with_unfinished_job_is_409(api):
    api.create_runbook("busy", content=PY)
    api.start("busy", {"name": "x"})
    resp = api.delete("/api/v1/runbooks/busy")
    assert resp.status_code == 409
    assert "stop them first" in resp.get_json()["message"]


def test_parameters_over_the_size_limit_are_400(api):
    api.create_runbook("big", content=PY)
    resp = api.post("/api/v1/runbooks/big/start",
                    json={"parameters": {"name": "x" * 70000}})
    assert resp.status_code == 400
    assert "limit" in resp.get_json()["message"] and "bytes" in resp.get_json()["message"]


def test_batch_starts_all_or_none(api):
    api.create_runbook("b1", content=PY)
    api.create_runbook("b2", content="print(1)\n")
    resp = api.post("/api/v1/jobs/batch", json={"jobs": [
        {"runbook": "b1", "parameters": {"name": "x"}},
        {"runbook": "b2", "worker_group": "linux"},
        {"runbook": "b1", "parameters": {"name": "y", "count": 2}}]})
    assert resp.status_code == 201, resp.get_json()
    items = resp.get_json()["items"]
    assert [(j["runbook_name"], j["status"]) for j in items] == [
        ("b1", "New"), ("b2", "New"), ("b1", "New")]
    assert items[1]["worker_group"] == "linux"
    before = len(api.get("/api/v1/jobs").get_json()["items"])
    bad = api.post("/api/v1/jobs/batch", json={"jobs": [
        {"runbook": "b1", "parameters": {"name": "ok"}},
        {"runbook": "b1", "parameters": {}}]})
    assert bad.status_code == 400
    assert bad.get_json()["message"].startswith("jobs[1]: Missing mandatory parameter name")
    missing = api.post("/api/v1/jobs/batch", json={"jobs": [{"runbook": "ghost"}]})
    assert missing.status_code == 404
    assert len(api.get("/api/v1/jobs").get_json()["items"]) == before  # none started
    assert api.post("/api/v1/jobs/batch", json={"jobs": []}).status_code == 400


def test_a_batch_of_1000_with_a_bad_last_item_starts_none(api):
    api.create_runbook("b1000", content=PY)
    jobs = [{"runbook": "b1000", "parameters": {"name": str(i)}} for i in range(999)]
    before = len(api.get("/api/v1/jobs").get_json()["items"])
    bad = api.post("/api/v1/jobs/batch", json={"jobs": [
        *jobs, {"runbook": "b1000", "parameters": {"name": "x", "count": "many"}}]})
    assert bad.status_code == 400, bad.get_json()
    assert bad.get_json()["message"].startswith("jobs[999]: ")
    assert "count" in bad.get_json()["message"] and "No job was started" in \
        bad.get_json()["message"]
    wrong_group = api.post("/api/v1/jobs/batch", json={"jobs": [
        *jobs, {"runbook": "b1000", "parameters": {"name": "x"}, "worker_group": "no way"}]})
    assert wrong_group.status_code == 400 and \
        wrong_group.get_json()["message"].startswith("jobs[999]: "), wrong_group.get_json()
    assert len(api.get("/api/v1/jobs").get_json()["items"]) == before  # none started
    too_many = api.post("/api/v1/jobs/batch", json={"jobs": [*jobs, *jobs]})
    assert too_many.status_code == 400 and "jobs" in too_many.get_json()["errors"], \
        too_many.get_json()
    ok = api.post("/api/v1/jobs/batch", json={"jobs": [
        *jobs, {"runbook": "b1000", "parameters": {"name": "last"}}]})
    assert ok.status_code == 201, ok.get_json()
    items = ok.get_json()["items"]
    assert [j["parameters"]["name"] for j in items[-2:]] == ["998", "last"]
    assert {(j["status"], j["attempt"], j["runbook_version"]) for j in items} == {
        ("New", 1, 1)}
    detail = api.get(f"/api/v1/jobs/{items[999]['id']}").get_json()
    assert [e["status"] for e in detail["status_history"]] == ["New"]
    assert detail["parameters"] == {"name": "last"}
    # each job of the batch is audited, as a single start is
    audited = api.get("/api/v1/audit", query_string={
        "target": f"/api/v1/jobs/{items[999]['id']}"}).get_json()["items"]
    assert [(e["action"], e["details"]) for e in audited] == [
        ("job.start", {"runbook": "b1000", "worker_group": "default"})]
