"""The portal's Test pane, versions, delete, re-run and start-from-a-job, through the Flask
client: refusals, CSRF and roles."""

from __future__ import annotations

import re
import uuid

from sqlalchemy.orm import Session

from smacommon.crypto import get_crypto
from smacommon.db import get_engine
from smacommon.models import Job
from smacommon.sealing import unseal
from tests.test_portal import _token, sign_in

SECRETIVE = ("from smarunbook import Secret\n"
             "def main(count: int, password: Secret, who: str = 'x', loud: bool = False):\n"
             "    print(who * count)\n")


def test_delete_is_for_authors_asks_first_and_is_refused_while_a_job_runs(client, api):
    api.create_runbook(name="doomed")
    job = api.start("doomed", worker_group="nobody")  # stays New: no worker of that group
    csrf = sign_in(client, _token(api, "operator"))
    assert 'id="delete-runbook"' not in client.get("/runbooks/doomed").get_data(as_text=True)
    assert client.post("/runbooks/doomed/delete", data={"csrf_token": csrf}).status_code == 403
    csrf = sign_in(client, _token(api, "author"))
    page = client.get("/runbooks/doomed").get_data(as_text=True)
    assert re.search(r'id="delete-runbook"\s+data-confirm="Delete runbook doomed', page)
    assert client.post("/runbooks/doomed/delete", data={}).status_code == 400  # no CSRF
    refused = client.post("/runbooks/doomed/delete", data={"csrf_token": csrf},
                          follow_redirects=True)
    text = refused.get_data(as_text=True)
    assert refused.request.path == "/runbooks/doomed"
    assert "has 1 job(s) not yet finished; stop them first" in text and "flash error" in text
    assert api.get("/api/v1/runbooks/doomed").status_code == 200
    assert api.post(f"/api/v1/jobs/{job['id']}/stop").status_code == 202
    done = client.post("/runbooks/doomed/delete", data={"csrf_token": csrf},
                       follow_redirects=True)
    assert done.request.path == "/runbooks"
    assert "Runbook doomed deleted" in done.get_data(as_text=True)
    assert api.get("/api/v1/runbooks/doomed").status_code == 404


def test_a_version_page_is_read_only_and_any_two_versions_diff(client, api):
    sign_in(client, _token(api, "reader"))
    api.create_runbook(name="grows", content="def main(n: int = 1):\n    print(n)\n")
    api.put("/api/v1/runbooks/grows/draft",
            json={"content": "def main(n: int = 2, who: str = 'me'):\n    print(n, who)\n"})
    assert api.post("/api/v1/runbooks/grows/publish").status_code == 201
    page = client.get("/runbooks/grows").get_data(as_text=True)
    assert 'href="/runbooks/grows/versions/1"' in page and 'id="compare-form"' in page
    first = client.get("/runbooks/grows/versions/1").get_data(as_text=True)
    assert "readonly" in first and "print(n)" in first and "<td>who" not in first
    second = client.get("/runbooks/grows/versions/2").get_data(as_text=True)
    assert "<td>who" in second and "published" in second
    diff = client.get("/runbooks/grows/versions/diff?a=1&b=2").get_data(as_text=True)
    assert "Version 1 vs version 2" in diff
    assert 'class="del">-def main(n: int = 1):' in diff
    assert 'class="add">+def main(n: int = 2, who: str = &#39;me&#39;):' in diff
    same = client.get("/runbooks/grows/versions/diff?a=2&b=2").get_data(as_text=True)
    assert "Versions 2 and 2 have the same content." in same
    for query, message in (("a=x&b=2", "Choose the first version"),
                           ("a=1", "Choose the second version"),
                           ("a=0&b=1", "must be a version number"),
                           ("a=1&b=99999999999", "must be a version number")):
        bad = client.get(f"/runbooks/grows/versions/diff?{query}")
        assert bad.status_code == 400 and message in bad.get_data(as_text=True), query
    missing = client.get("/runbooks/grows/versions/diff?a=1&b=7")
    assert missing.status_code == 404 and "has no version 7" in missing.get_data(as_text=True)
    assert client.get("/runbooks/grows/versions/9").status_code == 404


def test_the_test_pane_tests_the_editors_content_with_parameters(client, api):
    api.create_runbook(name="tried", content="def main(n: int = 1):\n    print(n)\n")
    csrf = sign_in(client, _token(api, "operator"))
    assert client.post("/runbooks/tried/test", data={"csrf_token": csrf}).status_code == 403
    csrf = sign_in(client, _token(api, "author"))
    editor = client.get("/runbooks/tried/edit").get_data(as_text=True)
    assert 'id="test-form"' in editor and 'name="p_n" type="number"' in editor
    assert "No test run yet." in editor
    content = "def main(count: int, who: str = 'x'):\n    print(who * count)\n"
    assert client.post("/runbooks/tried/test", data={"content": content}).status_code == 400
    wrong = client.post("/runbooks/tried/test", data={
        "csrf_token": csrf, "content": content, "p_count": "many", "group": "nobody"})
    assert wrong.status_code == 400
    text = wrong.get_data(as_text=True)
    assert 'id="err-p_count" role="alert">Parameter count must be an integer' in text
    assert api.get("/api/v1/runbooks/tried/draft").get_json()["content"] == content  # saved
    started = client.post("/runbooks/tried/test", data={
        "csrf_token": csrf, "content": content, "p_count": "3", "group": "nobody"})
    assert started.status_code == 302
    location = started.headers["Location"]
    assert location.startswith("/runbooks/tried/edit?test=") and location.endswith("#test-pane")
    job_id = location.split("test=")[1].split("#")[0]
    job = api.get(f"/api/v1/jobs/{job_id}").get_json()
    assert job["is_test"] and job["parameters"]["count"] == 3 and job["runbook_version"] is None
    pane = client.get(f"/runbooks/tried/edit?test={job_id}").get_data(as_text=True)
    assert f'data-job="{job_id}"' in pane and 'id="job-status">New' in pane
    assert f'data-job="{job_id}"' in client.get("/runbooks/tried/edit").get_data(as_text=True)
    broken = client.post("/runbooks/tried/test", data={
        "csrf_token": csrf, "content": "def main(:\n", "group": "nobody"})
    assert broken.status_code == 400 and "line 1" in broken.get_data(as_text=True)
    assert api.get("/api/v1/runbooks/tried").get_json()["published_version"]["number"] == 1


def test_rerun_reuses_sealed_secrets_on_the_server_and_start_prefills_the_rest(
        client, api, services, settings):
    api.create_runbook(name="again", content=SECRETIVE)
    first = api.start("again", {"count": 2, "password": "hunter2", "loud": True},
                      worker_group="nobody", arguments=None)
    reader = sign_in(client, _token(api, "reader"))
    page = client.get(f"/jobs/{first['id']}").get_data(as_text=True)
    assert 'id="rerun-job"' not in page and 'id="start-from-job"' not in page
    assert client.post(f"/jobs/{first['id']}/rerun", data={"csrf_token": reader}) \
        .status_code == 403
    csrf = sign_in(client, _token(api, "operator"))
    page = client.get(f"/jobs/{first['id']}").get_data(as_text=True)
    assert "Run again: published version 1, same parameters" in page
    assert client.post(f"/jobs/{first['id']}/rerun", data={}).status_code == 400
    again = client.post(f"/jobs/{first['id']}/rerun", data={"csrf_token": csrf})
    assert again.status_code == 302
    new_id = again.headers["Location"].rsplit("/", 1)[1]
    assert new_id != first["id"]
    new = api.get(f"/api/v1/jobs/{new_id}").get_json()
    assert new["parameters"] == first["parameters"] and new["parameters"]["password"] == "***"
    assert new["worker_group"] == "nobody" and new["runbook_version"] == 1
    with Session(get_engine(services["database_url"])) as session:
        row = session.get(Job, uuid.UUID(new_id))
        opened = unseal(get_crypto(settings).for_job(row.id), row.sealed_parameters)
    assert opened == {"password": "hunter2"}  # sealed again, under the new job's keys
    # the start form filled in from the job: everything but the secret, which it asks for
    prefilled = client.get(f"/runbooks/again?from_job={first['id']}").get_data(as_text=True)
    assert re.search(r'name="p_count" type="number"[^>]*value="2"', prefilled)
    assert re.search(r'name="p_loud"\s+checked', prefilled)
    assert "hunter2" not in prefilled and 'value="***"' not in prefilled
    assert "Type the secret value of password again" in prefilled
    other = api.create_runbook(name="other")
    elsewhere = client.get(f"/runbooks/other?from_job={first['id']}").get_data(as_text=True)
    assert "is not a job of other" in elsewhere and other["name"] == "other"
    assert "not found" in client.get("/runbooks/again?from_job=nope").get_data(as_text=True)


def test_rerun_of_a_test_job_tests_the_draft_again_and_needs_an_author(client, api):
    api.create_runbook(name="drafty", content="def main(n: int = 1):\n    print(n)\n")
    api.put("/api/v1/runbooks/drafty/draft", json={"content": "def main(n: int):\n    pass\n"})
    test = api.post("/api/v1/runbooks/drafty/draft/test",
                    json={"parameters": {"n": 5}, "worker_group": "nobody"}).get_json()
    csrf = sign_in(client, _token(api, "operator"))
    assert 'id="rerun-job"' not in client.get(f"/jobs/{test['id']}").get_data(as_text=True)
    assert client.post(f"/jobs/{test['id']}/rerun", data={"csrf_token": csrf}) \
        .status_code == 403
    csrf = sign_in(client, _token(api, "author"))
    assert "Test again: the current draft" in client.get(f"/jobs/{test['id']}") \
        .get_data(as_text=True)
    again = client.post(f"/jobs/{test['id']}/rerun", data={"csrf_token": csrf})
    assert again.status_code == 302 and "/runbooks/drafty/edit?test=" in again.headers[
        "Location"]
    new_id = again.headers["Location"].split("test=")[1].split("#")[0]
    new = api.get(f"/api/v1/jobs/{new_id}").get_json()
    assert new["is_test"] and new["parameters"] == {"n": 5}
    api.post("/api/v1/runbooks/drafty/publish")  # no draft left: the re-run is refused
    refused = client.post(f"/jobs/{test['id']}/rerun", data={"csrf_token": csrf},
                          follow_redirects=True)
    assert "has no draft to test" in refused.get_data(as_text=True)
