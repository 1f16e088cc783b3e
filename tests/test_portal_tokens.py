"""The portal's My tokens page: someone signed in (with a token, their directory password, or
an OpenID provider) lists, makes and revokes their personal tokens through the services of
/api/v1/me/tokens; refusals are the page with a message and a 4xx, never a 500."""

from __future__ import annotations

import html
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from smacommon.crypto import get_crypto
from smacommon.db import utcnow
from smacommon.directory import Person
from smacommon.models import ApiToken, DirectorySession
from smacommon.oidc import SignedIn
from smacommon.services import directory_sessions
from tests.conftest import ADMIN_TOKEN, Api
from tests.slapd import OPERATORS, PASSWORDS, slapd  # noqa: F401
from tests.test_ldap import bearer, portal_sign_in
from tests.test_ldap import make_app as ldap_app
from tests.test_oidc import make_app as oidc_app
from tests.test_portal import sign_in

PAGE = "/tokens/mine"


def _token(api, name: str, role: str) -> str:
    resp = api.post("/api/v1/tokens", json={"name": name, "role": role})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["token"]


def _csrf(page: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', page)[1]


def _secret(page: str) -> str:
    return html.unescape(re.search(r'id="new-token-secret" value="([^"]+)"', page)[1])


def _flash(page: str) -> str:
    return html.unescape(" ".join(re.findall(r'<p class="flash error"[^>]*>([^<]*)</p>', page)))


def _make(browser, csrf: str, **fields):
    resp = browser.post(PAGE, data={"csrf_token": csrf, **fields})
    return resp, resp.get_data(as_text=True)


@pytest.fixture
def operator(app, api):
    """A browser signed in with an operator token: (client, csrf)."""
    browser = app.test_client()
    return browser, sign_in(browser, _token(api, "ops", "operator"))


def test_make_list_use_and_revoke_a_token(operator, api):
    browser, csrf = operator
    page = browser.get(PAGE).get_data(as_text=True)
    assert "You have no personal tokens yet" in page
    offered = re.findall(r"<option[^>]*>(\w+)</option>", page)
    assert offered == ["none", "reader", "operator"]  # never more than their own
    assert 'href="/tokens/mine"' in browser.get("/").get_data(as_text=True)  # the header

    resp, page = _make(browser, csrf, name="laptop", role="reader", expires_in_days="7")
    assert resp.status_code == 201, _flash(page)
    assert resp.headers["Cache-Control"] == "no-store"
    assert "not shown again" in page and "sma login http://localhost" in page
    laptop = Api(api.client, _secret(page))
    assert laptop.get("/api/v1/runbooks").status_code == 200
    api.create_runbook("hello")
    assert laptop.post("/api/v1/runbooks/hello/start", json={}).status_code == 403  # reader
    # the API lists it too: the same tokens
    ops_tokens = browser.get("/api/v1/me/tokens").get_json()["items"]
    assert [(t["name"], t["role"], t["owner"]) for t in ops_tokens] == \
        [("laptop", "reader", "token:ops")]
    assert ops_tokens[0]["expires_at"] is not None
    listed = browser.get(PAGE).get_data(as_text=True)
    assert "laptop" in listed and "not shown again" not in listed
    assert _secret(page) not in listed  # the secret is in the answer that made it only

    gone = browser.post(f"{PAGE}/{ops_tokens[0]['id']}/revoke", data={"csrf_token": csrf})
    assert gone.status_code == 302
    assert "revoked" in browser.get(PAGE).get_data(as_text=True)
    assert laptop.get("/api/v1/runbooks").status_code == 401


def test_an_operator_token_made_in_the_portal_starts_jobs(operator, api):
    browser, csrf = operator
    resp, page = _make(browser, csrf, name="ci")  # the default role: their own
    assert resp.status_code == 201, _flash(page)
    api.create_runbook("hello")
    ci = Api(api.client, _secret(page))
    assert ci.start("hello")["started_by"] == "user:token:ops/token:ci"
    assert ci.post("/api/v1/runbooks", json={"name": "x", "runbook_type": "python",
                                             "content": "print(1)\n"}).status_code == 403


@pytest.mark.parametrize("fields,status,said", [
    ({"name": "root", "role": "admin"}, 403, "at most your own role (operator)"),
    ({"name": "", "role": "reader"}, 400, "name"),
    ({"name": ".."}, 400, "token name"),
    ({"name": "x" * 49}, 400, "name"),
    ({"name": "x", "role": "boss"}, 400, "role"),
    ({"name": "x", "expires_in_days": "0"}, 400, "expires_in_days"),
    ({"name": "x", "expires_in_days": "soon"}, 400, "expires_in_days"),
])
def test_bad_tokens_are_refused_with_a_message(operator, fields, status, said):
    browser, csrf = operator
    resp, page = _make(browser, csrf, **fields)
    assert resp.status_code == status, _flash(page)
    assert said in _flash(page)
    assert "You have no personal tokens yet" in page


def test_a_second_token_of_one_name_is_a_409(operator):
    browser, csrf = operator
    assert _make(browser, csrf, name="laptop")[0].status_code == 201
    resp, page = _make(browser, csrf, name="laptop")
    assert resp.status_code == 409 and "already have a token named 'laptop'" in _flash(page)


def test_without_csrf_nothing_is_made_or_revoked(operator):
    browser, csrf = operator
    assert browser.post(PAGE, data={"name": "laptop"}).status_code == 400
    assert browser.post(PAGE, data={"name": "laptop", "csrf_token": "forged"}).status_code == 400
    assert browser.get("/api/v1/me/tokens").get_json()["items"] == []
    _make(browser, csrf, name="laptop")
    made = browser.get("/api/v1/me/tokens").get_json()["items"][0]
    assert browser.post(f"{PAGE}/{made['id']}/revoke").status_code == 400
    assert browser.get("/api/v1/me/tokens").get_json()["items"][0]["revoked"] is False


def test_another_persons_token_is_not_found(app, api, operator):
    browser, csrf = operator
    other = app.test_client()
    other_csrf = sign_in(other, _token(api, "other", "author"))
    _make(other, other_csrf, name="theirs")
    theirs = other.get("/api/v1/me/tokens").get_json()["items"][0]
    resp = browser.post(f"{PAGE}/{theirs['id']}/revoke", data={"csrf_token": csrf})
    assert resp.status_code == 404 and "You have no token" in _flash(resp.get_data(as_text=True))
    assert browser.post(f"{PAGE}/not-an-id/revoke", data={"csrf_token": csrf}).status_code == 404
    assert "theirs" not in browser.get(PAGE).get_data(as_text=True)


def test_signed_in_with_a_personal_token_one_cannot_make_more(operator, app):
    browser, csrf = operator
    _, page = _make(browser, csrf, name="laptop")
    laptop = app.test_client()
    laptop_csrf = sign_in(laptop, _secret(page))
    assert "cannot make tokens" in laptop.get(PAGE).get_data(as_text=True)
    resp, page = _make(laptop, laptop_csrf, name="chain")
    assert resp.status_code == 403 and "cannot make tokens" in _flash(page)


def test_someone_with_only_role_bindings_opens_the_page(app, api):
    browser = app.test_client()
    csrf = sign_in(browser, _token(api, "dba", "none"))
    page = browser.get(PAGE).get_data(as_text=True)
    assert re.findall(r"<option[^>]*>(\w+)</option>", page) == ["none"]
    resp, page = _make(browser, csrf, name="x", role="reader")
    assert resp.status_code == 403


def test_the_admin_token_makes_admin_tokens(client, api):
    csrf = sign_in(client, ADMIN_TOKEN)
    resp, page = _make(client, csrf, name="backup", role="admin")
    assert resp.status_code == 201, _flash(page)
    assert Api(api.client, _secret(page)).get("/api/v1/tokens").status_code == 200


def test_a_directory_person_makes_a_token_checked_with_the_directory(slapd):  # noqa: F811
    client = ldap_app(slapd, ldap_refresh_seconds=0.3).test_client()
    assert portal_sign_in(client, "bob", PASSWORDS["bob"]).status_code == 302
    csrf = _csrf(client.get(PAGE).get_data(as_text=True))
    assert _make(client, csrf, name="cli", role="admin")[0].status_code == 403
    resp, page = _make(client, csrf, name="cli")
    assert resp.status_code == 201, _flash(page)
    cli = bearer(_secret(page))
    assert client.get("/api/v1/runbooks", headers=cli).status_code == 200
    tokens = client.get("/api/v1/tokens", headers=bearer(ADMIN_TOKEN)).get_json()["items"]
    assert [(t["owner"], t["role"]) for t in tokens if t["name"] == "cli"] == \
        [("user:bob (ldap)", "operator")]
    slapd.remove_member(OPERATORS, "bob")
    time.sleep(0.4)  # past SMA_LDAP_REFRESH_SECONDS: the next use asks the directory
    assert client.get("/api/v1/runbooks", headers=cli).status_code == 401


class Provider:
    """An OpenID provider as oidcauth.resume sees it: its refresh gives `person` (None: the
    provider refused the refresh token)."""

    def __init__(self, person: Person | None) -> None:
        self.person = person

    def refresh(self, refresh_token: str, subject: str) -> SignedIn | None:
        return SignedIn(self.person, "rt-next") if self.person else None


@pytest.fixture
def oidc(services):
    """An app with OpenID sign-in on, and a browser signed in as bob (operator) through it:
    (app, browser, csrf). The provider is never called but for the refreshes a test asks."""
    app = oidc_app("http://127.0.0.1:9/realm")
    bob = Person("bob@example.com", "sub-bob", "operator", "oidc", ("sma-operators",))
    crypto = get_crypto(app.config["SMA_SETTINGS"])
    with app.extensions["sma_db"].factory() as own, own.begin():
        _, secret = directory_sessions.open_session(own, bob, "portal", timedelta(hours=1),
                                                    crypto.encrypt("rt"))
    browser = app.test_client()
    with browser.session_transaction() as cookie:
        cookie["dsid"], cookie["csrf"] = secret, "csrf-of-bob"
    return app, browser, "csrf-of-bob"


def _refresh_to(app, person: Person | None) -> None:
    """The next request of the session refreshes it, and the provider answers `person`."""
    app.extensions["sma_oidc"] = Provider(person)
    with app.extensions["sma_db"].factory() as own, own.begin():
        own.execute(update(DirectorySession).values(checked_at=utcnow() - timedelta(hours=1)))


def _tokens(browser) -> dict:
    return {t["name"]: t for t in browser.get("/api/v1/me/tokens").get_json()["items"]}


def test_an_openid_persons_token_is_for_the_cli_and_lasts_at_most_30_days(oidc):
    app, browser, csrf = oidc
    page = browser.get(PAGE).get_data(as_text=True)
    assert 'id="oidc-note"' in page and "at most 30 days" in page
    resp, page = _make(browser, csrf, name="laptop", expires_in_days="31")
    assert resp.status_code == 400 and "at most 30 days" in _flash(page)
    resp, page = _make(browser, csrf, name="laptop")
    assert resp.status_code == 201, _flash(page)
    made = _tokens(browser)["laptop"]
    assert (made["owner"], made["role"]) == ("user:bob@example.com (oidc)", "operator")
    expires = datetime.fromisoformat(made["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=29, hours=23) < expires - datetime.now(UTC) <= timedelta(days=30)
    laptop = bearer(_secret(page))
    assert browser.get("/api/v1/runbooks", headers=laptop).status_code == 200
    with app.extensions["sma_db"].factory() as own:  # never sent to a directory
        assert own.get(ApiToken, uuid.UUID(made["id"])).owner_dn is None


def test_a_refused_refresh_ends_the_session_not_the_tokens(oidc):
    app, browser, csrf = oidc
    _, page = _make(browser, csrf, name="laptop")
    laptop = bearer(_secret(page))
    # a refresh the provider refuses ends the session, not the tokens (the 30 days bound them)
    _refresh_to(app, None)
    assert browser.get(PAGE).status_code == 302
    assert browser.get("/api/v1/runbooks", headers=laptop).status_code == 200


def test_an_openid_persons_tokens_are_lowered_then_revoked_with_their_role(oidc):
    app, browser, csrf = oidc
    _, page = _make(browser, csrf, name="laptop")
    laptop = bearer(_secret(page))
    _refresh_to(app, Person("bob@example.com", "sub-bob", "reader", "oidc", ("sma-readers",)))
    assert browser.get(PAGE).status_code == 200
    assert _tokens(browser)["laptop"]["role"] == "reader"
    api = app.test_client()
    api.post("/api/v1/runbooks", headers=bearer(ADMIN_TOKEN), json={
        "name": "hello", "runbook_type": "python", "content": "print(1)\n"})
    api.post("/api/v1/runbooks/hello/publish", headers=bearer(ADMIN_TOKEN))
    assert api.post("/api/v1/runbooks/hello/start", headers=laptop, json={}).status_code == 403
    _refresh_to(app, Person("bob@example.com", "sub-bob", None, "oidc", ()))
    assert browser.get(PAGE).status_code == 302  # signed out: in no mapped group
    assert api.get("/api/v1/runbooks", headers=laptop).status_code == 401
