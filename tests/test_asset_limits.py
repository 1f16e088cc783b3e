"""Assets limited to the runbooks with a tag: a job of another runbook is told they do not
exist, through a real worker and the runbook-side helpers."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

SECRET = "s3cret-of-the-db-team"
READER = (
    "import automationassets\n"
    "from automationassets import AutomationAssetNotFound\n"
    "for get, name in ((automationassets.get_automation_credential, 'DbCred'),\n"
    "                  (automationassets.get_automation_variable, 'DbVar'),\n"
    "                  (automationassets.get_automation_variable, 'Missing')):\n"
    "    try:\n"
    "        value = get(name)\n"
    "        print('read', name, len(str(value)))\n"
    "    except AutomationAssetNotFound as exc:\n"
    "        print('refused', exc)\n"
    "try:\n"
    "    automationassets.set_automation_variable('DbVar', 'changed')\n"
    "    print('set')\n"
    "except AutomationAssetNotFound as exc:\n"
    "    print('refused', exc)\n")


@pytest.fixture
def limited(api):
    for path, body in (("/api/v1/credentials", {"name": "DbCred", "username": "dba",
                                                "password": SECRET, "runbook_tag": "db"}),
                       ("/api/v1/variables", {"name": "DbVar", "value": "v"})):
        resp = api.post(path, json=body)
        assert resp.status_code == 201, resp.get_json()
    # set afterwards, through a change: the same limit
    resp = api.patch("/api/v1/variables/DbVar", json={"runbook_tag": "db"})
    assert resp.get_json()["runbook_tag"] == "db"
    assert api.get("/api/v1/credentials/DbCred").get_json()["runbook_tag"] == "db"


def _output(api, job) -> str:
    assert job["status"] == "Completed", job
    return api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True)


def test_only_jobs_of_runbooks_with_the_tag_read_a_limited_asset(api, worker, limited):
    other = _output(api, api.run(READER, tags=["web"]))
    assert other == ("refused Credential 'DbCred' not found.\n"
                     "refused Variable 'DbVar' not found.\n"
                     "refused Variable 'Missing' not found.\n"
                     "refused Variable 'DbVar' not found.\n")
    assert api.get("/api/v1/variables/DbVar").get_json()["value"] == "v"  # not changed
    tagged = _output(api, api.run(READER, tags=["db", "prod"]))
    assert tagged == (f"read DbCred {len(str({'username': 'dba', 'password': SECRET}))}\n"
                      "read DbVar 1\n"
                      "refused Variable 'Missing' not found.\n"
                      "set\n")
    # the limit lifted: any job reads it again
    api.patch("/api/v1/variables/DbVar", json={"runbook_tag": None})
    assert "read DbVar" in _output(api, api.run(READER))


def test_a_limit_is_a_tag(api):
    resp = api.post("/api/v1/variables", json={"name": "V", "value": 1, "runbook_tag": ""})
    assert resp.status_code == 400 and "runbook_tag" in str(resp.get_json()["errors"])
