"""Sign-in with an LDAP directory (issue 18, item 1), against a real slapd (tests/slapd.py):
the portal's Directory tab, `sma login --user`, the API's /sessions, the role from groups
and its refresh, injection attempts, a locked account, the directory down."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import pytest

from smacommon.errors import ConfigurationError
from smacommon.settings import load_settings
from tests.conftest import ADMIN_TOKEN, ROOT, wait_for
from tests.slapd import ADMINS, GROUPS, OPERATORS, PASSWORDS, ldap_settings, slapd  # noqa: F401

SIGN_IN = "/api/v1/sessions"


def make_app(server, **overrides):
    from smaweb import create_app

    settings = load_settings(**ldap_settings(server, **overrides))
    return create_app({"TESTING": True, "SMA_SETTINGS": settings})


@pytest.fixture
def ldap_client(slapd):  # noqa: F811
    return make_app(slapd).test_client()


def sign_in(client, username, password):
    return client.post(SIGN_IN, json={"username": username, "password": password})


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def csrf(client, path="/login"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def portal_sign_in(client, username, password):
    return client.post("/login", data={"csrf_token": csrf(client), "method": "directory",
                                       "username": username, "password": password})


def test_a_role_mapping_naming_an_unknown_role_is_refused_at_start():
    with pytest.raises(ConfigurationError, match=r"SMA_ROLE_MAPPING.*unknown role 'boss'"):
        load_settings(ldap_url="ldaps://ldap.example.org", ldap_user_base="dc=example",
                      role_mapping='{"cn=ops,dc=example": "boss"}')
    with pytest.raises(ConfigurationError, match="SMA_ROLE_MAPPING.*JSON"):
        load_settings(ldap_url="ldaps://ldap.example.org", ldap_user_base="dc=example",
                      role_mapping="cn=ops,dc=example=admin")
    with pytest.raises(ConfigurationError, match="SMA_LDAP_URL.*clear text"):
        load_settings(ldap_url="ldap://ldap.example.org", ldap_user_base="dc=example",
                      role_mapping='{"cn=ops,dc=example": "admin"}')


def test_api_sign_in_names_the_person_in_the_audit_and_in_started_by(ldap_client):
    from tests.contract import CheckedApi, Contract

    contract = Contract(ldap_client.get("/api/openapi.json").get_json())
    answer = CheckedApi(ldap_client, contract).post(SIGN_IN, json={  # as documented
        "username": "alice", "password": PASSWORDS["alice"]})
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert (body["user"], body["role"], body["principal"]) == ("alice", "admin",
                                                                "user:alice (ldap)")
    headers = bearer(body["token"])
    created = ldap_client.post("/api/v1/runbooks", headers=headers, json={
        "name": "hello", "runbook_type": "python", "content": "print('hi')\n"})
    assert created.status_code == 201, created.get_json()
    assert ldap_client.post("/api/v1/runbooks/hello/publish", headers=headers).status_code == 201
    job = ldap_client.post("/api/v1/runbooks/hello/start", headers=headers,
                           json={"parameters": {}}).get_json()
    assert job["started_by"] == "user:alice (ldap)"
    events = ldap_client.get("/api/v1/audit", headers=headers).get_json()["items"]
    actions = {(e["actor"], e["action"]) for e in events}
    assert ("user:alice (ldap)", "session.sign_in") in actions
    assert ("user:alice (ldap)", "job.start") in actions


def test_an_operator_gets_the_operator_role_and_no_more(ldap_client):
    token = sign_in(ldap_client, "bob", PASSWORDS["bob"]).get_json()["token"]
    assert ldap_client.get("/api/v1/runbooks", headers=bearer(token)).status_code == 200
    refused = ldap_client.get("/api/v1/audit", headers=bearer(token))
    assert refused.status_code == 403
    assert "admin role" in refused.get_json()["message"]


@pytest.mark.parametrize("username,password,status,message", [
    ("alice", "not-her-password", 401, "Wrong user name or password."),
    ("nobody", "whatever", 401, "Wrong user name or password."),
    ("alice", "", 401, "Type your password."),  # never an anonymous bind
    ("carol", PASSWORDS["carol"], 403, "no directory group that sma maps to a role"),
    ("dave", PASSWORDS["dave"], 401, "Your directory account is locked"),
])
def test_refused_sign_ins_say_why(ldap_client, username, password, status, message):
    answer = sign_in(ldap_client, username, password)
    assert answer.status_code == status
    assert message in answer.get_json()["message"]
    assert "token" not in answer.get_json()


@pytest.mark.parametrize("username", [
    "*", "alice)(uid=*", "*)(|(uid=*", "al*", "*)(uid=alice", "alice\x00", "al\x00ice",
    "(uid=alice)", "\\2a", "alice)(|(objectClass=*)", " " * 3, "a" * 129, "a" * 5000,
])
def test_injection_attempts_sign_nobody_in(ldap_client, username):
    for password in PASSWORDS.values():
        answer = sign_in(ldap_client, username, password)
        assert answer.status_code in (400, 401), (username, answer.get_json())
        assert "token" not in (answer.get_json() or {})


def test_portal_sign_in_with_the_directory_tab(ldap_client):
    page = ldap_client.get("/login").get_data(as_text=True)
    assert "Directory" in page and 'name="username"' in page
    answer = portal_sign_in(ldap_client, "alice", PASSWORDS["alice"])
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert ldap_client.get("/").status_code == 200
    # the token tab still signs in with a token
    assert 'name="token"' in ldap_client.get("/login?with=token").get_data(as_text=True)


def test_portal_refusals_are_pages_with_the_reason(ldap_client):
    wrong = portal_sign_in(ldap_client, "alice", "nope")
    assert wrong.status_code == 401
    assert "Wrong user name or password." in wrong.get_data(as_text=True)
    nogroup = portal_sign_in(ldap_client, "carol", PASSWORDS["carol"])
    assert nogroup.status_code == 403
    assert "no directory group that sma maps to a role" in nogroup.get_data(as_text=True)
    assert ldap_client.get("/").status_code == 302  # still signed out


def test_leaving_the_group_ends_the_session_at_the_next_refresh(slapd):  # noqa: F811
    client = make_app(slapd, ldap_refresh_seconds=0.3).test_client()
    token = sign_in(client, "bob", PASSWORDS["bob"]).get_json()["token"]
    portal = make_app(slapd, ldap_refresh_seconds=0.3).test_client()
    assert portal_sign_in(portal, "bob", PASSWORDS["bob"]).status_code == 302
    assert client.get("/api/v1/runbooks", headers=bearer(token)).status_code == 200
    slapd.remove_member(OPERATORS, "bob")
    time.sleep(0.4)
    gone = client.get("/api/v1/runbooks", headers=bearer(token))
    assert gone.status_code == 401
    assert "no longer in a group" in gone.get_json()["message"]
    page = portal.get("/", follow_redirects=True).get_data(as_text=True)
    assert "no longer in a group" in page and 'name="username"' in page
    # back in the group, a new sign-in works again; the ended sessions stay ended
    slapd.add_member(OPERATORS, "bob")
    assert sign_in(client, "bob", PASSWORDS["bob"]).status_code == 201
    assert client.get("/api/v1/runbooks", headers=bearer(token)).status_code == 401


def test_a_new_group_changes_the_role_at_the_next_refresh(slapd):  # noqa: F811
    client = make_app(slapd, ldap_refresh_seconds=0.3).test_client()
    token = sign_in(client, "bob", PASSWORDS["bob"]).get_json()["token"]
    assert client.get("/api/v1/audit", headers=bearer(token)).status_code == 403
    slapd.add_member(ADMINS, "bob")
    time.sleep(0.4)
    assert client.get("/api/v1/audit", headers=bearer(token)).status_code == 200


def test_groups_found_by_a_group_search(slapd):  # noqa: F811
    client = make_app(slapd, ldap_group_base=GROUPS).test_client()
    assert sign_in(client, "alice", PASSWORDS["alice"]).get_json()["role"] == "admin"
    assert sign_in(client, "carol", PASSWORDS["carol"]).status_code == 403


def test_the_directory_down_is_a_clear_503_and_api_tokens_still_work(slapd):  # noqa: F811
    client = make_app(slapd, ldap_refresh_seconds=0.3).test_client()
    token = sign_in(client, "alice", PASSWORDS["alice"]).get_json()["token"]
    slapd.stop()
    down = sign_in(client, "alice", PASSWORDS["alice"])
    assert down.status_code == 503
    assert "directory did not answer" in down.get_json()["message"]
    page = portal_sign_in(client, "alice", PASSWORDS["alice"])
    assert page.status_code == 503 and "directory did not answer" in page.get_data(as_text=True)
    time.sleep(0.4)  # her session is due a check the directory cannot answer: 503, not 401
    assert client.get("/api/v1/runbooks", headers=bearer(token)).status_code == 503
    assert client.get("/api/v1/runbooks", headers=bearer(ADMIN_TOKEN)).status_code == 200


def test_failed_sign_ins_are_limited(ldap_client):
    statuses = [sign_in(ldap_client, "alice", f"wrong-{i}").status_code for i in range(21)]
    assert statuses[:20] == [401] * 20
    limited = sign_in(ldap_client, "alice", PASSWORDS["alice"])
    assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_sign_in_is_off_without_ldap_settings(client):
    off = sign_in(client, "alice", "alice-pw")
    assert off.status_code == 404 and "SMA_LDAP_URL" in off.get_json()["message"]
    assert 'name="username"' not in client.get("/login").get_data(as_text=True)


@pytest.fixture
def ldap_server(slapd):  # noqa: F811
    """A real HTTP server of an app with directory sign-in, for the CLI."""
    from werkzeug.serving import make_server

    from smacommon.embedded_redis import free_port

    port = free_port()
    server = make_server("127.0.0.1", port, make_app(slapd), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(timeout=10)


def test_cli_login_with_a_directory_user(ldap_server, tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "XDG_CONFIG_HOME": str(tmp_path / ".config"), "PYTHONPATH": str(ROOT)}

    def sma(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "smacli.main", *args], input=stdin,
                              capture_output=True, text=True, env=env, timeout=60,
                              cwd=tmp_path)

    wrong = sma("login", ldap_server, "--user", "alice", stdin="nope\n")
    assert wrong.returncode == 1 and "Wrong user name or password." in wrong.stderr
    nogroup = sma("login", ldap_server, "--user", "carol", stdin=PASSWORDS["carol"] + "\n")
    assert nogroup.returncode == 1 and "maps to a role" in nogroup.stderr
    done = sma("login", ldap_server, "--user", "alice", stdin=PASSWORDS["alice"] + "\n")
    assert done.returncode == 0, done.stderr
    assert "user:alice (ldap)" in done.stdout + done.stderr
    listed = sma("audit", "--actor", "user:alice (ldap)")
    assert listed.returncode == 0, listed.stderr
    wait_for(lambda: "session.sign_in" in sma("audit").stdout, timeout=10, what="audit")
