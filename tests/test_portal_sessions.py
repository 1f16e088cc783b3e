"""Portal sessions live on the server: signing out, or revoking the token signed in with,
ends every copy of the cookie at once (replayed as an attacker who saved it would)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from smacommon.db import get_engine, utcnow
from smacommon.models import Job, PortalSession
from tests.conftest import ADMIN_TOKEN

CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


def _sign_in(base: str, token: str) -> requests.Session:
    """A browser signed in at the real server."""
    browser = requests.Session()
    csrf = CSRF.search(browser.get(f"{base}/login", timeout=10).text)[1]
    resp = browser.post(f"{base}/login", data={"token": token, "csrf_token": csrf},
                        allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text[:300]
    return browser


def _replay(base: str, cookie: str) -> requests.Session:
    """Another machine with nothing but the saved cookie."""
    thief = requests.Session()
    thief.cookies.set("sma_session", cookie)
    return thief


def _csrf_of(thief: requests.Session, base: str) -> str:
    """The CSRF secret of a cookie (the thief reads it from a page while the cookie works)."""
    return CSRF.search(thief.get(f"{base}/runbooks", timeout=10).text)[1]


def _refused(thief: requests.Session, base: str, csrf: str, runbook: str) -> None:
    page = thief.get(f"{base}/runbooks", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    assert thief.get(f"{base}/api/v1/jobs", timeout=10).status_code == 401
    start = thief.post(f"{base}/runbooks/{runbook}/start", data={"csrf_token": csrf},
                       allow_redirects=False, timeout=10)
    assert start.status_code == 302 and start.headers["Location"].startswith("/login")


def _jobs(services) -> int:
    with Session(get_engine(services["database_url"])) as s:
        return len(s.scalars(select(Job.id)).all())


@pytest.fixture
def operator(api):
    made = api.post("/api/v1/tokens", json={"name": f"op-{uuid.uuid4().hex[:6]}",
                                            "role": "operator"}).get_json()
    api.create_runbook(name="rb1", content="print(1)\n")
    return made


def test_a_cookie_saved_before_sign_out_is_dead_after_it(services, operator):
    base = services["api_url"]
    browser = _sign_in(base, operator["token"])
    saved = browser.cookies["sma_session"]
    thief = _replay(base, saved)
    csrf = _csrf_of(thief, base)  # the copy works while the session lives
    assert thief.get(f"{base}/api/v1/jobs", timeout=10).status_code == 200
    out = browser.post(f"{base}/logout", data={"csrf_token": csrf}, allow_redirects=False,
                       timeout=10)
    assert out.status_code == 302
    _refused(_replay(base, saved), base, csrf, "rb1")
    assert _jobs(services) == 0  # the replayed start made no job
    with Session(get_engine(services["database_url"])) as s:
        ended = s.scalars(select(PortalSession.ended_at)).all()
    assert len(ended) == 1 and ended[0] is not None


def test_revoking_the_token_ends_its_sessions_at_once(services, api, operator):
    base = services["api_url"]
    browser = _sign_in(base, operator["token"])
    saved = browser.cookies["sma_session"]
    csrf = _csrf_of(browser, base)
    other = _sign_in(base, ADMIN_TOKEN)  # a session of another token lives on
    assert api.delete(f"/api/v1/tokens/{operator['id']}").status_code == 200
    _refused(_replay(base, saved), base, csrf, "rb1")
    _refused(browser, base, csrf, "rb1")
    assert _jobs(services) == 0
    assert other.get(f"{base}/runbooks", allow_redirects=False, timeout=10).status_code == 200
    from smacommon.services.tokens import hash_token

    with Session(get_engine(services["database_url"])) as s:
        ended = dict(s.execute(select(PortalSession.token_hash, PortalSession.ended_at)).all())
    assert ended[hash_token(operator["token"])] is not None
    assert ended[hash_token(ADMIN_TOKEN)] is None


def test_an_expired_token_ends_its_sessions(client, api, services):
    from tests.test_portal import sign_in

    made = api.post("/api/v1/tokens", json={"name": "short", "role": "reader",
                                            "expires_in_days": 1}).get_json()
    sign_in(client, made["token"])
    assert client.get("/runbooks").status_code == 200
    with Session(get_engine(services["database_url"])) as s, s.begin():
        s.execute(update(PortalSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/runbooks").status_code == 302  # the session's own expiry
    sign_in(client, made["token"])
    from smacommon.models import ApiToken

    with Session(get_engine(services["database_url"])) as s, s.begin():
        # signing in purged the expired session
        assert len(s.scalars(select(PortalSession.id)).all()) == 1
        s.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/runbooks").status_code == 302  # the token's expiry


def test_a_new_admin_token_ends_the_old_ones_sessions(app, services):
    from smacommon.settings import get_settings
    from smaweb import create_app
    from tests.test_portal import sign_in

    client = app.test_client()
    sign_in(client)
    cookie = client.get_cookie("sma_session").value
    rotated = create_app({"TESTING": True, "SMA_SETTINGS": get_settings().model_copy(
        update={"admin_token": "sma_a-new-admin-token"})}).test_client()
    rotated.set_cookie("sma_session", cookie)
    assert rotated.get("/runbooks").status_code == 302
    assert client.get("/runbooks").status_code == 200  # the old token still works there


def test_signing_in_again_ends_the_session_before(client):
    from tests.test_portal import sign_in

    sign_in(client)
    first = client.get_cookie("sma_session").value
    sign_in(client)
    assert client.get("/runbooks").status_code == 200
    client.set_cookie("sma_session", first)
    assert client.get("/runbooks").status_code == 302
    # signing out of a dead session is no error
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(
        as_text=True))[1]
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302


def test_last_seen_is_written_at_most_once_a_minute(client, services):
    from tests.test_portal import sign_in

    sign_in(client)
    engine = get_engine(services["database_url"])
    long_ago = utcnow() - timedelta(minutes=5)
    with Session(engine) as s, s.begin():
        s.execute(update(PortalSession).values(last_seen_at=long_ago))
    assert client.get("/runbooks").status_code == 200
    with Session(engine) as s:
        seen = s.scalar(select(PortalSession.last_seen_at))
    assert seen > long_ago + timedelta(minutes=4)
    assert client.get("/jobs").status_code == 200
    with Session(engine) as s:
        assert s.scalar(select(PortalSession.last_seen_at)) == seen
