"""Sign-in with OpenID Connect (issue 18, item 2) against a real provider, django-oidc-provider
(tests/oidcprovider.py), through the real redirects: a requests.Session goes from sma's
/login/oidc to the provider's login form, posts bob's password, and comes back to sma's
callback on a real HTTP server. The mapped role, the audit's and started_by's name, refusals
(no mapped group, a tampered state, a replayed code), the refresh, the provider's key
rotation, the provider down."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
from sqlalchemy import text, update

from smacommon.errors import ConfigurationError
from smacommon.settings import load_settings
from tests.conftest import ADMIN_TOKEN
from tests.oidcprovider import CLIENT_ID, CLIENT_SECRET, PASSWORDS, OidcProvider

MAPPING = {"sma-operators": "operator", "sma-admins": "admin"}
TIMEOUT = 15


def oidc_settings(issuer: str, **overrides) -> dict[str, object]:
    return {"oidc_provider_url": issuer, "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET, "oidc_provider_name": "Example ID",
            "oidc_timeout_seconds": 3, "role_mapping": MAPPING, **overrides}


def make_app(issuer: str, **overrides):
    from smaweb import create_app

    settings = load_settings(**oidc_settings(issuer, **overrides))
    return create_app({"TESTING": True, "SMA_SETTINGS": settings})


@pytest.fixture(scope="module")
def stack(services, tmp_path_factory):
    """A real provider and a real sma web server that signs in with it."""
    from werkzeug.serving import make_server

    # sma's server holds its port from the start (the provider needs the callback
    # address before sma's app can be made); it serves the app once both are up.
    apps: list = []
    server = make_server("127.0.0.1", 0, lambda env, start: apps[0](env, start),
                         threaded=True)
    sma = f"http://127.0.0.1:{server.server_port}"
    provider = OidcProvider(tmp_path_factory.mktemp("oidc-provider"),
                            f"{sma}/login/oidc/callback").start()
    app = make_app(provider.issuer)
    apps.append(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sma, provider, app
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
    provider.stop()


def to_callback(browser: requests.Session, sma: str, user: str, password: str) -> str:
    """Follow the redirects from sma to the provider's login form, sign in there, and
    return the callback URL the provider sends the browser back to (not yet visited)."""
    form = browser.get(f"{sma}/login/oidc", timeout=TIMEOUT)
    assert form.status_code == 200 and "csrfmiddlewaretoken" in form.text, form.text[:500]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    nxt = parse_qs(urlsplit(form.url).query)["next"][0]
    answer = browser.post(form.url, data={"csrfmiddlewaretoken": token, "username": user,
                                          "password": password, "next": nxt},
                          allow_redirects=False, timeout=TIMEOUT)
    for _ in range(5):  # login -> authorize -> sma's callback
        assert answer.status_code in (301, 302), answer.text[:500]
        location = requests.compat.urljoin(answer.url, answer.headers["Location"])
        if location.startswith(f"{sma}/login/oidc/callback"):
            return location
        answer = browser.get(location, allow_redirects=False, timeout=TIMEOUT)
    raise AssertionError("the provider never sent the browser back to sma")


def sign_in(sma: str, user: str = "bob@example.com") -> tuple[requests.Session, requests.Response]:
    browser = requests.Session()
    callback = to_callback(browser, sma, user, PASSWORDS[user])
    return browser, browser.get(callback, timeout=TIMEOUT)


def admin(sma: str, path: str) -> dict:
    answer = requests.get(f"{sma}{path}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                          timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_sign_in_gives_the_mapped_role_and_names_the_person(stack, api):
    sma, _, _ = stack
    api.create_runbook(name="hello")
    browser, page = sign_in(sma)
    assert page.status_code == 200 and page.url == f"{sma}/", page.text[:300]
    assert "bob@example.com" in page.text
    runbook = browser.get(f"{sma}/runbooks/hello", timeout=TIMEOUT).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', runbook).group(1)
    started = browser.post(f"{sma}/runbooks/hello/start", data={"csrf_token": csrf},
                           allow_redirects=False, timeout=TIMEOUT)
    assert started.status_code == 302, started.text[:300]  # an operator may start jobs
    jobs = admin(sma, "/api/v1/jobs")["items"]
    assert [j["started_by"] for j in jobs] == ["user:bob@example.com (oidc)"]
    events = admin(sma, "/api/v1/audit?limit=50")["items"]
    sign_ins = [e for e in events if e["action"] == "session.sign_in"]
    assert sign_ins and sign_ins[0]["actor"] == "user:bob@example.com (oidc)"
    # an operator is no author: the server refuses what the role may not do
    edit = browser.post(f"{sma}/runbooks/hello/edit", data={"csrf_token": csrf,
                                                             "content": "x"}, timeout=TIMEOUT)
    assert edit.status_code == 403 and "author role" in edit.text
    out = browser.post(f"{sma}/logout", data={"csrf_token": csrf}, timeout=TIMEOUT)
    assert out.url.startswith(f"{sma}/login")
    assert browser.get(f"{sma}/runbooks", allow_redirects=False,
                       timeout=TIMEOUT).status_code == 302


def test_the_login_page_offers_the_provider(stack):
    sma, _, _ = stack
    page = requests.get(f"{sma}/login", timeout=TIMEOUT).text
    assert "Sign in with Example ID" in page and "/login/oidc" in page


def test_someone_in_no_mapped_group_is_refused_with_the_reason(stack):
    sma, _, _ = stack
    browser, page = sign_in(sma, "carol@example.com")
    assert page.status_code == 403
    assert "carol@example.com" in page.text and "maps to a role" in page.text
    assert browser.get(f"{sma}/runbooks", allow_redirects=False,
                       timeout=TIMEOUT).status_code == 302  # not signed in


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_a_tampered_state_is_a_400(stack):
    sma, _, _ = stack
    browser = requests.Session()
    callback = to_callback(browser, sma, "bob@example.com", PASSWORDS["bob@example.com"])
    page = browser.get(_with_query(callback, state="forged"), timeout=TIMEOUT)
    assert page.status_code == 400 and "sign in again" in page.text
    # the pending sign-in is gone with the failed attempt: the true state is refused now too
    assert browser.get(callback, timeout=TIMEOUT).status_code == 400


def test_a_replayed_callback_is_refused_clearly(stack):
    sma, _, _ = stack
    browser = requests.Session()
    callback = to_callback(browser, sma, "bob@example.com", PASSWORDS["bob@example.com"])
    before = browser.cookies.get("sma_session")
    assert browser.get(callback, timeout=TIMEOUT).status_code == 200
    again = browser.get(callback, timeout=TIMEOUT)  # the same browser: nothing to finish
    assert again.status_code == 400 and "finished already" in again.text
    # a copy of the cookie from before the callback: the provider refuses the used code
    thief = requests.Session()
    thief.cookies.set("sma_session", before)
    replay = thief.get(callback, timeout=TIMEOUT)
    assert replay.status_code == 401, replay.text[:300]
    assert "Example ID refused the sign-in code" in replay.text
    assert thief.get(f"{sma}/runbooks", allow_redirects=False,
                     timeout=TIMEOUT).status_code == 302


def test_the_provider_saying_no_is_shown(stack):
    sma, _, _ = stack
    browser = requests.Session()
    form = browser.get(f"{sma}/login/oidc", timeout=TIMEOUT)  # the provider's login form
    authorize = parse_qs(urlsplit(form.url).query)["next"][0]
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    # the person declined at the provider: it sends them back with an error, no code
    page = browser.get(f"{sma}/login/oidc/callback?error=access_denied&error_description="
                       f"The+user+declined&state={state}", timeout=TIMEOUT)
    assert page.status_code == 401
    assert "Example ID did not sign you in: The user declined" in page.text


def _age_sessions(app) -> None:
    from smacommon.db import utcnow
    from smacommon.models import DirectorySession

    with app.extensions["sma_db"].factory() as own, own.begin():
        own.execute(update(DirectorySession).values(checked_at=utcnow() - timedelta(hours=1)))


def test_the_role_is_read_again_with_the_refresh_token(stack):
    sma, provider, app = stack
    browser, page = sign_in(sma)
    assert page.status_code == 200
    with app.extensions["sma_db"].factory() as own:
        first = own.execute(text("SELECT refresh_token, source FROM directory_sessions"
                                 " WHERE ended_at IS NULL")).one()
    assert first.source == "oidc" and first.refresh_token  # kept, encrypted
    assert first.refresh_token.startswith("gAAAA")  # a Fernet token, not the provider's
    _age_sessions(app)
    assert browser.get(f"{sma}/runbooks", allow_redirects=False,
                       timeout=TIMEOUT).status_code == 200  # refreshed, still an operator
    with app.extensions["sma_db"].factory() as own:
        after = own.execute(text("SELECT refresh_token, checked_at FROM directory_sessions"
                                 " WHERE ended_at IS NULL")).one()
    assert after.refresh_token != first.refresh_token  # the provider's new one
    provider.ungroup("bob@example.com")
    try:
        _age_sessions(app)
        ended = browser.get(f"{sma}/runbooks", timeout=TIMEOUT)
        assert ended.url.startswith(f"{sma}/login") and "has ended" in ended.text
    finally:
        provider.regroup("bob@example.com", "sma-operators")


def test_the_provider_rotating_its_keys(stack):
    sma, provider, app = stack
    assert sign_in(sma)[1].status_code == 200  # sma has read the first key
    provider.rotate_key()
    browser, page = sign_in(sma)  # signed with a key id sma has not seen: fetched again
    assert page.status_code == 200 and "bob@example.com" in page.text


def test_the_provider_down_is_a_clear_message_and_tokens_still_work(services):
    from smacommon.embedded_redis import free_port

    client = make_app(f"http://127.0.0.1:{free_port()}/realms/corp").test_client()
    page = client.get("/login/oidc")
    assert page.status_code == 503
    assert "Example ID did not answer" in page.get_data(as_text=True)
    assert client.get("/api/v1/runbooks", headers={
        "Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
    assert client.get("/login").status_code == 200


def test_sign_in_is_off_without_the_provider_setting(client):
    assert client.get("/login/oidc").status_code == 404
    assert "/login/oidc" not in client.get("/login").get_data(as_text=True)


@pytest.mark.parametrize("overrides, named", [
    ({"oidc_provider_url": "ftp://id.example.org"}, "SMA_OIDC_PROVIDER_URL"),
    ({"oidc_provider_url": "http://id.example.org"}, "SMA_OIDC_PROVIDER_URL"),
    ({"oidc_client_id": ""}, "SMA_OIDC_CLIENT_ID"),
    ({"oidc_client_secret": ""}, "SMA_OIDC_CLIENT_SECRET"),
    ({"oidc_scopes": "profile email"}, "SMA_OIDC_SCOPES"),
    ({"oidc_groups_claim": "a b"}, "SMA_OIDC_GROUPS_CLAIM"),
    ({"oidc_username_claim": ""}, "SMA_OIDC_USERNAME_CLAIM"),
    ({"oidc_timeout_seconds": 0}, "SMA_OIDC_TIMEOUT_SECONDS"),
    ({"oidc_refresh_seconds": 3600}, "SMA_OIDC_REFRESH_SECONDS"),
    ({"role_mapping": ""}, "SMA_ROLE_MAPPING"),
    ({"role_mapping": '{"sma-operators": "boss"}'}, "SMA_ROLE_MAPPING"),
])
def test_bad_settings_are_refused_at_start_naming_the_setting(overrides, named):
    with pytest.raises(ConfigurationError, match=named):
        load_settings(**oidc_settings("https://id.example.org/realms/corp", **overrides))


def test_group_names_map_when_openid_is_on_and_dns_when_only_ldap():
    found = load_settings(**oidc_settings("https://id.example.org"))
    assert found.roles_by_group == MAPPING and found.oidc_scopes == "openid profile email"
    with pytest.raises(ConfigurationError, match="SMA_ROLE_MAPPING.*DN"):
        load_settings(ldap_url="ldaps://ldap.example.org", ldap_user_base="dc=example",
                      role_mapping=MAPPING)
