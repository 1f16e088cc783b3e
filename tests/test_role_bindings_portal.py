"""The portal, signed in with a token whose only access is a role binding over a tag: its
pages show and reach only those runbooks, as the API does."""

from __future__ import annotations

from tests.test_portal import sign_in

SCRIPT = "print('hi')\n"


def test_the_portal_shows_only_the_bound_runbooks(app, api):
    jobs = {}
    for name, tags in (("db-backup", ["db"]), ("web-deploy", ["web"])):
        api.create_runbook(name, content=SCRIPT, tags=tags)
        jobs[name] = api.start(name)["id"]
    api.post("/api/v1/webhooks", json={"name": "hook-web", "runbook": "web-deploy"})
    api.post("/api/v1/webhooks", json={"name": "hook-db", "runbook": "db-backup"})
    secret = api.post("/api/v1/tokens", json={"name": "dba", "role": "none"}).get_json()["token"]
    assert api.post("/api/v1/role-bindings", json={
        "principal": "token:dba", "role": "operator", "scope_type": "tag",
        "scope_value": "db"}).status_code == 201
    browser = app.test_client()
    csrf = sign_in(browser, secret)  # lands on the dashboard: it opens, with only theirs

    page = browser.get("/runbooks").get_data(as_text=True)
    assert "db-backup" in page and "web-deploy" not in page
    assert browser.get("/runbooks/db-backup").status_code == 200
    assert browser.get("/runbooks/web-deploy").status_code == 404
    listed = browser.get("/jobs").get_data(as_text=True)
    assert jobs["db-backup"][:8] in listed and jobs["web-deploy"][:8] not in listed
    only = browser.get("/jobs?runbook=web-deploy").get_data(as_text=True)
    assert jobs["web-deploy"][:8] not in only
    assert browser.get(f"/jobs/{jobs['web-deploy']}").status_code == 404
    assert browser.get(f"/jobs/{jobs['db-backup']}").status_code == 200
    hooks = browser.get("/webhooks").get_data(as_text=True)
    assert "hook-db" in hooks and "hook-web" not in hooks
    # the API through the portal's cookie is limited the same way
    assert browser.get(f"/api/v1/jobs/{jobs['web-deploy']}/output").status_code == 404
    # what is not a runbook's needs the global role
    assert browser.get("/assets/variables").status_code == 403
    # starting: the bound runbook, not the other
    started = browser.post("/runbooks/db-backup/start", data={"csrf_token": csrf})
    assert started.status_code in (200, 302), started.get_data(as_text=True)[:300]
    refused = browser.post("/runbooks/web-deploy/start", data={"csrf_token": csrf})
    assert refused.status_code == 404
    assert len(api.get("/api/v1/jobs?runbook=web-deploy").get_json()["items"]) == 1
