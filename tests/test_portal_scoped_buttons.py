"""The portal's buttons follow the caller's role over each runbook: someone whose access to a
runbook comes from a role binding sees the controls that binding lets them use there, and
only there; callers without bindings see what their global role gives, as before."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.test_portal import sign_in

START = 'id="start-form"'
EDIT = "Edit draft"
DELETE = 'id="delete-runbook"'
STOP = 'id="stop-job"'
NEW_RUNBOOK = "New runbook"


@pytest.fixture
def runbooks(api):
    """db-backup (tag db) and web-deploy (tag web), published, each with a job no worker takes."""
    jobs = {}
    for name, tags in (("db-backup", ["db"]), ("web-deploy", ["web"])):
        api.create_runbook(name, tags=tags)
        jobs[name] = api.start(name, worker_group="nowhere")["id"]  # stays New
    return jobs


def _caller(app, api, name: str, role: str, bound: str | None = None) -> object:
    """A browser signed in with a new token of global `role`, bound to `bound` over tag db."""
    secret = api.post("/api/v1/tokens", json={"name": name, "role": role}).get_json()["token"]
    if bound:
        made = api.post("/api/v1/role-bindings", json={
            "principal": f"token:{name}", "role": bound, "scope_type": "tag",
            "scope_value": "db"})
        assert made.status_code == 201, made.get_json()
    browser = app.test_client()
    sign_in(browser, secret)
    return browser


def _page(browser, path: str) -> str:
    resp = browser.get(path)
    assert resp.status_code == 200, (path, resp.status_code)
    return resp.get_data(as_text=True)


def test_a_bound_operator_with_no_global_role_sees_start_on_its_runbooks(app, api, runbooks):
    browser = _caller(app, api, "dba", "none", bound="operator")
    page = _page(browser, "/runbooks/db-backup")
    assert START in page and "needs the operator role" not in page
    assert EDIT not in page and DELETE not in page
    assert STOP in _page(browser, f"/jobs/{runbooks['db-backup']}")
    # the others are not there for them at all
    assert browser.get("/runbooks/web-deploy").status_code == 404
    assert browser.get(f"/jobs/{runbooks['web-deploy']}").status_code == 404
    assert NEW_RUNBOOK not in _page(browser, "/runbooks")


def test_a_global_reader_bound_over_db_sees_start_there_and_not_elsewhere(app, api, runbooks):
    browser = _caller(app, api, "half", "reader", bound="operator")
    assert START in _page(browser, "/runbooks/db-backup")
    other = _page(browser, "/runbooks/web-deploy")  # readable everywhere: shown, no Start
    assert START not in other and "Starting jobs needs the operator role" in other
    assert STOP in _page(browser, f"/jobs/{runbooks['db-backup']}")
    assert STOP not in _page(browser, f"/jobs/{runbooks['web-deploy']}")


def test_a_bound_author_sees_edit_and_delete_on_its_runbooks_only(app, api, runbooks):
    browser = _caller(app, api, "dbauthor", "reader", bound="author")
    page = _page(browser, "/runbooks/db-backup")
    assert EDIT in page and DELETE in page and START in page
    other = _page(browser, "/runbooks/web-deploy")
    assert EDIT not in other and DELETE not in other and START not in other
    assert NEW_RUNBOOK in _page(browser, "/runbooks")  # with a tag its binding covers


def test_a_global_reader_sees_no_controls(app, api, runbooks):
    browser = _caller(app, api, "viewer", "reader")
    for name in runbooks:
        page = _page(browser, f"/runbooks/{name}")
        assert START not in page and EDIT not in page and DELETE not in page
        assert STOP not in _page(browser, f"/jobs/{runbooks[name]}")
    assert NEW_RUNBOOK not in _page(browser, "/runbooks")


def test_an_admin_sees_everything_as_before(app, api, runbooks):
    browser = app.test_client()
    sign_in(browser, ADMIN_TOKEN)
    for name in runbooks:
        page = _page(browser, f"/runbooks/{name}")
        assert START in page and EDIT in page and DELETE in page
        assert STOP in _page(browser, f"/jobs/{runbooks[name]}")
    assert NEW_RUNBOOK in _page(browser, "/runbooks")


def test_the_start_a_bound_operator_sees_works(app, api, runbooks):
    browser = _caller(app, api, "dba", "none", bound="operator")
    page = _page(browser, "/runbooks/db-backup")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)[1]
    started = browser.post("/runbooks/db-backup/start", data={"csrf_token": csrf})
    assert started.status_code in (200, 302), started.get_data(as_text=True)[:300]
    assert len(api.get("/api/v1/jobs?runbook=db-backup").get_json()["items"]) == 2
