"""The portal's pages through the Flask client: sign-in, CSRF, roles, forms, secrets."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from smacommon.db import get_engine, utcnow
from smacommon.models import Job, JobStream
from tests.conftest import ADMIN_TOKEN


def _csrf(client, path: str = "/") -> str:
    page = client.get(path)
    return re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True))[1]


def sign_in(client, token: str = ADMIN_TOKEN):
    resp = client.post("/login", data={"token": token, "csrf_token": _csrf(client, "/login")})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    return _csrf(client)


@pytest.fixture
def portal(client):
    """A signed-in admin's browser session: (client, csrf token)."""
    return client, sign_in(client)


def _token(api, role: str) -> str:
    return api.post("/api/v1/tokens", json={"name": f"{role}-{uuid.uuid4().hex[:6]}",
                                            "role": role}).get_json()["token"]


def test_pages_need_sign_in_and_sign_in_needs_a_valid_token(client, api):
    assert client.get("/runbooks").status_code == 302
    assert client.get("/runbooks").headers["Location"].startswith("/login?next=/runbooks")
    bad = client.post("/login", data={"token": "sma_wrong", "csrf_token": _csrf(client,
                                                                                 "/login")})
    assert bad.status_code == 401 and "not valid" in bad.get_data(as_text=True)
    no_csrf = client.post("/login", data={"token": ADMIN_TOKEN})
    assert no_csrf.status_code == 400
    job_token = client.post("/login", data={"token": "smajob_x",
                                            "csrf_token": _csrf(client, "/login")})
    assert job_token.status_code == 401
    to = client.post("/login?next=https://evil.example/x",
                     data={"token": ADMIN_TOKEN, "csrf_token": _csrf(client, "/login")})
    assert to.headers["Location"] == "/"  # never off-site
    cookie = client.get_cookie("sma_session")
    assert cookie.http_only and cookie.same_site == "Lax"
    assert ADMIN_TOKEN not in cookie.value  # only a hash and a CSRF secret
    for path in ("/", "/runbooks", "/jobs", "/assets/variables", "/assets/credentials",
                 "/assets/connections", "/assets/certificates", "/schedules", "/webhooks",
                 "/workers", "/runbooks/new"):
        assert client.get(path).status_code == 200, path
    for asset in ("portal.css", "portal.js", "vendor/htmx.min.js", "vendor/sma-editor.js",
                  "vendor/LICENSES.txt"):
        assert client.get(f"/static/{asset}").status_code == 200, asset
    out = client.post("/logout", data={"csrf_token": _csrf(client)})
    assert out.status_code == 302 and client.get("/").status_code == 302


def test_a_revoked_token_ends_the_session(client, api):
    secret = _token(api, "reader")
    sign_in(client, secret)
    assert client.get("/runbooks").status_code == 200
    token_id = next(t["id"] for t in api.get("/api/v1/tokens").get_json()["items"]
                    if t["role"] == "reader")
    assert api.delete(f"/api/v1/tokens/{token_id}").status_code == 200
    assert client.get("/runbooks").status_code == 302


def test_forms_need_the_csrf_token(portal, api):
    client, csrf = portal
    api.create_runbook(name="rb1")
    assert client.post("/runbooks/rb1/start", data={}).status_code == 400
    assert client.post("/runbooks/rb1/start", data={"csrf_token": "wrong"}).status_code == 400
    assert client.post("/runbooks/rb1/start", headers={"X-CSRF-Token": csrf}) \
        .status_code == 302


def test_roles_hide_controls_and_the_server_refuses_them(client, api):
    api.create_runbook(name="guarded")
    reader = _token(api, "reader")
    csrf = sign_in(client, reader)
    page = client.get("/runbooks/guarded").get_data(as_text=True)
    assert "Edit draft" not in page and 'id="start-form"' not in page
    assert "New runbook" not in client.get("/runbooks").get_data(as_text=True)
    assert client.post("/runbooks/guarded/start", data={"csrf_token": csrf}).status_code == 403
    assert client.post("/runbooks/guarded/edit", data={"csrf_token": csrf,
                                                       "content": "x"}).status_code == 403
    for path in ("/schedules", "/webhooks", "/assets/variables/new"):
        refused = client.post(path, data={"csrf_token": csrf, "name": "x"})
        assert refused.status_code == 403 and "author role" in refused.get_data(as_text=True)
    operator = _token(api, "operator")
    csrf = sign_in(client, operator)
    page = client.get("/runbooks/guarded").get_data(as_text=True)
    assert 'id="start-form"' in page and "Edit draft" not in page
    assert client.post("/runbooks/guarded/publish", data={"csrf_token": csrf}) \
        .status_code == 403


def test_create_edit_diff_publish_and_start(portal, api):
    client, csrf = portal
    made = client.post("/runbooks/new", data={
        "csrf_token": csrf, "name": "made-here", "runbook_type": "python",
        "description": "from the portal", "tags": "demo, ops",
        "content": "def main(count: int, who: str = 'x', loud: bool = False):\n"
                   "    print(who * count)\n"})
    assert made.status_code == 302 and made.headers["Location"] == "/runbooks/made-here/edit"
    bad_name = client.post("/runbooks/new", data={"csrf_token": csrf, "name": "bad name",
                                                  "runbook_type": "python", "content": "x=1"})
    assert bad_name.status_code == 400 and "Invalid runbook name" in bad_name.get_data(
        as_text=True)
    broken = client.post("/runbooks/made-here/edit", data={"csrf_token": csrf,
                                                          "content": "def main(:\n"})
    assert broken.status_code == 302  # a draft may be broken; publishing it may not
    refused = client.post("/runbooks/made-here/publish", data={"csrf_token": csrf},
                          follow_redirects=True).get_data(as_text=True)
    assert "flash error" in refused and "line 1" in refused
    client.post("/runbooks/made-here/edit", data={
        "csrf_token": csrf, "content": "def main(count: int, who: str = 'x', loud: bool "
                                       "= False):\n    print(who * count)\n"})
    published = client.post("/runbooks/made-here/publish", data={"csrf_token": csrf})
    assert published.headers["Location"] == "/runbooks/made-here"
    client.post("/runbooks/made-here/edit", data={
        "csrf_token": csrf, "content": "def main(count: int, who: str = 'y', loud: bool "
                                       "= False):\n    print(who * count)\n"})
    diff = client.get("/runbooks/made-here/diff").get_data(as_text=True)
    assert "class=\"del\">-def main(count: int, who: str = &#39;x&#39;" in diff
    assert "class=\"add\">+def main(count: int, who: str = &#39;y&#39;" in diff
    form = client.get("/runbooks/made-here").get_data(as_text=True)
    assert 'name="p_count" type="number"' in form and 'name="p_loud"' in form
    assert re.search(r'name="p_count"[^>]*required', form)
    wrong = client.post("/runbooks/made-here/start", data={"csrf_token": csrf,
                                                           "p_count": "many"})
    assert wrong.status_code == 400
    assert "Parameter count must be an integer" in wrong.get_data(as_text=True)
    started = client.post("/runbooks/made-here/start", data={
        "csrf_token": csrf, "p_count": "2", "p_loud": "on", "group": "nobody"})
    assert started.status_code == 302
    job_id = started.headers["Location"].rsplit("/", 1)[1]
    job = api.get(f"/api/v1/jobs/{job_id}").get_json()
    assert job["parameters"] == {"count": 2, "loud": True, "who": "x"} or \
        job["parameters"] == {"count": 2, "loud": True}
    assert job["started_by"] == "user:admin"
    discarded = client.post("/runbooks/made-here/discard", data={"csrf_token": csrf})
    assert discarded.status_code == 302
    assert api.get("/api/v1/runbooks/made-here").get_json()["has_draft"] is False


def test_job_page_renders_the_tail_and_pages_backwards(portal, api, services):
    client, csrf = portal
    rb = api.create_runbook(name="chatty")
    job_id = uuid.uuid4()
    engine = get_engine(services["database_url"])
    now = utcnow()
    with Session(engine) as session:
        session.add(Job(id=job_id, runbook_id=uuid.UUID(rb["id"]), status="Completed",
                        parameters={}, created_at=now - timedelta(minutes=1),
                        start_time=now - timedelta(minutes=1), end_time=now))
        session.flush()
        session.execute(insert(JobStream), [
            {"job_id": job_id, "seq": i, "stream": "Error" if i % 1000 == 0 else "Output",
             "time": now, "text": f"line {i}"} for i in range(1, 20001)])
        session.commit()
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert page.count('class="rec ') == 500
    assert "line 20000" in page and "line 19501" in page and "line 19500<" not in page
    assert "Earlier output" in page and "Stop" not in page  # finished: no controls
    earlier = client.get(f"/jobs/{job_id}/records?before=19501").get_data(as_text=True)
    assert "line 19500" in earlier and "line 19301" in earlier and "line 19300<" not in earlier
    assert "before=19301" in earlier
    # the page reads the API with its session cookie (the download and the live stream)
    download = client.get(f"/api/v1/jobs/{job_id}/output")
    assert download.status_code == 200 and download.get_data(as_text=True).count("\n") == 19980
    # but the cookie alone never changes anything through the API
    assert client.post(f"/api/v1/jobs/{job_id}/stop").status_code == 401


def test_job_controls_follow_the_status(portal, api):
    client, csrf = portal
    rb = api.create_runbook(name="waits")
    job = api.start(rb["name"], worker_group="nobody")
    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert 'id="stop-job"' in page and 'id="resume-job"' not in page
    stopped = client.post(f"/jobs/{job['id']}/stop", data={"csrf_token": csrf})
    assert stopped.status_code == 302
    assert api.get(f"/api/v1/jobs/{job['id']}").get_json()["status"] == "Stopped"
    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert 'id="stop-job"' not in page and "Stopped" in page
    again = client.post(f"/jobs/{job['id']}/stop", data={"csrf_token": csrf},
                        follow_redirects=True)
    assert "has already ended (Stopped)" in again.get_data(as_text=True)
    rows = client.get(f"/jobs/rows?id={job['id']}").get_data(as_text=True)
    assert f'id="job-{job["id"]}"' in rows and "Stopped" in rows
    listed = client.get("/jobs?status=Stopped&range=24h").get_data(as_text=True)
    assert job["id"][:8] in listed
    assert job["id"][:8] not in client.get("/jobs?status=Failed").get_data(as_text=True)


def test_secret_fields_never_show_stored_values(portal, api):
    client, csrf = portal
    client.post("/assets/variables/new", data={"csrf_token": csrf, "name": "ApiKey",
                                               "value": "s3cret-value", "is_encrypted": "on"})
    client.post("/assets/credentials/new", data={"csrf_token": csrf, "name": "Db",
                                                 "username": "app", "password": "pw-123456"})
    client.post("/assets/connection-types/new", data={"csrf_token": csrf, "name": "Svc",
                                                      "fields": "Url\nKey:encrypted"})
    client.post("/assets/connections/new", data={"csrf_token": csrf, "name": "Prod",
                                                 "connection_type": "Svc",
                                                 "f_Url": "https://x", "f_Key": "k3y-value"})
    pages = "".join(client.get(p).get_data(as_text=True) for p in (
        "/assets/variables", "/assets/variables/ApiKey", "/assets/credentials",
        "/assets/credentials/Db", "/assets/connections", "/assets/connections/Prod"))
    for secret in ("s3cret-value", "pw-123456", "k3y-value"):
        assert secret not in pages
    assert "https://x" in pages and "app" in pages
    # saving with the secret inputs left empty keeps the secrets
    client.post("/assets/credentials/Db", data={"csrf_token": csrf, "username": "app2",
                                               "password": "", "description": ""})
    client.post("/assets/variables/ApiKey", data={"csrf_token": csrf, "value": "",
                                                 "description": "kept"})
    cred = client.get("/assets/credentials/Db").get_data(as_text=True)
    assert 'value="app2"' in cred and 'name="password" id="secret-password" type="password" ' \
        'value=""' in cred
    from smacommon.crypto import get_crypto
    from smacommon.models import Credential, Variable
    from smacommon.services.assets import get_asset, variable_value
    from smacommon.settings import get_settings

    with Session(get_engine(get_settings().effective_database_url)) as session:
        crypto = get_crypto(get_settings())
        assert crypto.decrypt_str(get_asset(session, Credential, "Db").password_encrypted) \
            == "pw-123456"
        assert variable_value(crypto, get_asset(session, Variable, "ApiKey")) == \
            "s3cret-value"


def test_schedules_and_webhooks_pages(portal, api):
    client, csrf = portal
    api.create_runbook(name="nightly-job")
    made = client.post("/schedules", data={
        "csrf_token": csrf, "name": "paris-mornings", "frequency": "Day", "interval": "1",
        "start_time": "2030-03-01T09:00", "time_zone": "Europe/Paris", "missed": "run_once"})
    assert made.status_code == 302
    schedule = api.get("/api/v1/schedules/paris-mornings").get_json()
    assert schedule["next_run"].startswith("2030-03-01T08:00")  # 09:00 in Paris, winter
    bad = client.post("/schedules", data={"csrf_token": csrf, "name": "x", "frequency": "Day",
                                          "time_zone": "Mars/Base"}, follow_redirects=True)
    assert "IANA" in bad.get_data(as_text=True)
    linked = client.post("/schedules/paris-mornings/link", data={
        "csrf_token": csrf, "runbook": "nightly-job", "parameters": ""})
    assert linked.status_code == 302
    page = client.get("/schedules/paris-mornings").get_data(as_text=True)
    assert "nightly-job" in page and "Unlink" in page
    # runs shown as the schedule's wall clock, which is how they are set
    assert "<dt>Next run</dt><dd>2030-03-01 09:00 Europe/Paris</dd>" in page
    assert "2030-03-01 09:00 Europe/Paris" in client.get("/schedules").get_data(as_text=True)
    client.post("/schedules/paris-mornings/disable", data={"csrf_token": csrf})
    assert api.get("/api/v1/schedules/paris-mornings").get_json()["enabled"] is False
    created = client.post("/webhooks", data={"csrf_token": csrf, "name": "push",
                                             "runbook": "nightly-job", "parameters": ""})
    body = created.get_data(as_text=True)
    url = re.search(r'id="new-webhook-url" value="([^"]+)"', body)[1]
    token = url.rsplit("/", 1)[1]
    assert "/api/v1/webhooks/invoke/" in url and "not shown again" in body
    assert token not in client.get("/webhooks").get_data(as_text=True)
    assert client.post(f"/api/v1/webhooks/invoke/{token}", data="{}").status_code == 202


def test_certificate_upload_page(portal, tmp_path):
    import io

    from tests.test_assets import _self_signed

    client, csrf = portal
    cert, pfx, _ = _self_signed(tmp_path, b"pfxpass")
    wrong = client.post("/assets/certificates/new", data={
        "csrf_token": csrf, "name": "Web", "password": "nope",
        "file": (io.BytesIO(pfx), "web.pfx")}, content_type="multipart/form-data",
        follow_redirects=True)
    assert "flash error" in wrong.get_data(as_text=True)
    made = client.post("/assets/certificates/new", data={
        "csrf_token": csrf, "name": "Web", "password": "pfxpass", "exportable": "on",
        "file": (io.BytesIO(pfx), "web.pfx")}, content_type="multipart/form-data",
        follow_redirects=True)
    page = made.get_data(as_text=True)
    assert "Created Web." in page
    from cryptography.hazmat.primitives import hashes

    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()
    shown = client.get("/assets/certificates/Web").get_data(as_text=True)
    assert thumbprint.lower() in shown.lower() and "pfxpass" not in shown
    missing = client.post("/assets/certificates/new", data={"csrf_token": csrf, "name": "X"},
                          follow_redirects=True)
    assert "Choose a PFX or PEM file" in missing.get_data(as_text=True)


def test_guessing_tokens_at_the_sign_in_page_is_slowed_down(client):
    from smaweb.limiter import FAILURES_ALLOWED

    csrf = _csrf(client, "/login")
    codes = [client.post("/login", data={"token": f"sma_guess{i}", "csrf_token": csrf})
             .status_code for i in range(FAILURES_ALLOWED + 1)]
    assert codes[:FAILURES_ALLOWED] == [401] * FAILURES_ALLOWED and codes[-1] == 429
    page = client.post("/login", data={"token": "sma_guess-again", "csrf_token": csrf})
    assert page.status_code == 429 and "Too many requests" in page.get_data(as_text=True)
    # the guesser is slowed, but a right token from the same address still signs in
    right = client.post("/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf})
    assert right.status_code == 302


def test_secret_parameter_is_a_password_field_never_written_back(portal, api):
    client, csrf = portal
    api.create_runbook(name="with-secret", content=(
        "from smarunbook import Secret\ndef main(pw: Secret, count: int):\n    print(count)\n"))
    form = client.get("/runbooks/with-secret").get_data(as_text=True)
    assert 'name="p_pw" type="password"' in form
    wrong = client.post("/runbooks/with-secret/start", data={
        "csrf_token": csrf, "p_pw": "portal-s3cret", "p_count": "many"})
    assert wrong.status_code == 400 and "portal-s3cret" not in wrong.get_data(as_text=True)
    started = client.post("/runbooks/with-secret/start", data={
        "csrf_token": csrf, "p_pw": "portal-s3cret", "p_count": "1", "group": "nobody"})
    job_id = started.headers["Location"].rsplit("/", 1)[1]
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "portal-s3cret" not in page and "***" in page
