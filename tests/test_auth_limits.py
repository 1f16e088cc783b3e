"""Slowing down token guessing: a wrong token never locks out a right one, and behind a
reverse proxy (SMA_TRUSTED_PROXIES) the address is the real client's, never a spoofed one."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from smaweb.limiter import FAILURES_ALLOWED
from tests.conftest import ADMIN_TOKEN

# 40 wrong tokens of every shape (job tokens, API tokens, anything), each one different
GUESSER = (
    "import json, os, secrets, urllib.request, urllib.error\n"
    "url = os.environ['SMA_API_URL']\n"
    "def get(path, secret):\n"
    "    req = urllib.request.Request(url + path, headers={'Authorization': 'Bearer ' + secret})\n"
    "    try:\n"
    "        return urllib.request.urlopen(req, timeout=30).status\n"
    "    except urllib.error.HTTPError as exc:\n"
    "        return exc.code\n"
    "shapes = ('smajob_', 'sma_', '')\n"
    "codes = [get('/api/v1/runtime/variables/Plain', shapes[i % 3] + secrets.token_urlsafe(32))\n"
    "         for i in range(40)]\n"
    "print(json.dumps(codes))\n"
    "print(get('/api/v1/runtime/variables/Plain', os.environ['SMA_JOB_TOKEN']))\n"
    "import automationassets\n"
    "print(automationassets.get_automation_variable('Plain'))\n")


@pytest.fixture
def fresh_limiter(services):
    """The session's web server counts wrong tokens per process: start and leave it clean,
    so other tests' wrong tokens from 127.0.0.1 are their own."""
    services["web_app"].extensions["sma_auth_failures"].clear()
    yield
    services["web_app"].extensions["sma_auth_failures"].clear()


def _serve(app):
    from werkzeug.serving import make_server

    from smacommon.embedded_redis import free_port

    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def proxied(services):
    """A real HTTP server of the app behind one trusted reverse proxy (its URL)."""
    from smacommon.settings import get_settings
    from smaweb import create_app

    settings = get_settings().model_copy(update={"trusted_proxies": 1})
    server = _serve(create_app({"SMA_SETTINGS": settings}))
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_runbook_guessing_tokens_locks_out_no_one(api, worker, services, fresh_limiter):
    api.post("/api/v1/variables", json={"name": "Plain", "value": "plain-value"})
    guesser = api.run(GUESSER)
    assert guesser["status"] == "Completed", guesser
    lines = api.get(f"/api/v1/jobs/{guesser['id']}/output").get_data(as_text=True).splitlines()
    codes = json.loads(lines[0])
    # the guesser is slowed: past the limit its wrong tokens get 429
    assert codes[:FAILURES_ALLOWED] == [401] * FAILURES_ALLOWED
    assert codes[FAILURES_ALLOWED:] == [429] * (40 - FAILURES_ALLOWED)
    # ...but its own token, from the same address, still works
    assert lines[1:] == ["200", "plain-value"]
    # another job started right after, from the same address, reads its asset
    other = api.run("import automationassets\n"
                    "print(automationassets.get_automation_variable('Plain'))\n")
    assert other["status"] == "Completed", other
    assert api.get(f"/api/v1/jobs/{other['id']}/output").get_data(as_text=True) == "plain-value\n"
    # and so does the admin, from the same address
    admin = requests.get(f"{services['api_url']}/api/v1/runbooks", timeout=10,
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert admin.status_code == 200
    # while the guesser's next wrong token is still refused
    wrong = requests.get(f"{services['api_url']}/api/v1/runbooks", timeout=10,
                         headers={"Authorization": "Bearer sma_one-more-guess"})
    assert wrong.status_code == 429 and int(wrong.headers["Retry-After"]) >= 1
    assert "Too many" in wrong.json()["message"]


def test_a_right_token_passes_after_guesses_around_its_beginning(api, client):
    """Twenty wrong tokens sharing a real token's first characters from one address: the
    next wrong one is 429, the real token still passes there (never refused by the limiter),
    and from elsewhere tokens are checked as always."""
    secret = api.post("/api/v1/tokens", json={"name": "victim", "role": "reader"}
                      ).get_json()["token"]
    attacker = {"REMOTE_ADDR": "198.51.100.66"}
    for i in range(FAILURES_ALLOWED):
        resp = client.get("/api/v1/runbooks", environ_base=attacker,
                          headers={"Authorization": f"Bearer {secret[:20]}{i:04d}xx"})
        assert resp.status_code == 401
    wrong = client.get("/api/v1/runbooks", environ_base=attacker,
                       headers={"Authorization": f"Bearer {secret[:20]}9999xx"})
    assert wrong.status_code == 429 and int(wrong.headers["Retry-After"]) >= 1
    right = client.get("/api/v1/runbooks", environ_base=attacker,
                       headers={"Authorization": f"Bearer {secret}"})
    assert right.status_code == 200
    elsewhere = client.get("/api/v1/runbooks", environ_base={"REMOTE_ADDR": "198.51.100.7"},
                           headers={"Authorization": f"Bearer {secret[:20]}0000xx"})
    assert elsewhere.status_code == 401
    admin = client.get("/api/v1/runbooks", environ_base=attacker,
                       headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert admin.status_code == 200


def test_missing_tokens_are_not_guesses(client):
    codes = {client.get("/api/v1/runbooks").status_code for _ in range(FAILURES_ALLOWED + 5)}
    assert codes == {401}


def test_the_limiter_forgets_the_oldest_keys_first(monkeypatch):
    from smaweb import limiter

    monkeypatch.setattr(limiter, "MAX_KEYS", 50)
    failures = limiter.Failures()
    for _ in range(FAILURES_ALLOWED + 1):
        failures.fail("203.0.113.1")
    for i in range(5000):  # many addresses cannot grow it without bound
        failures.fail(f"2001:db8::{i:x}")
    assert failures.size() <= 50
    assert failures.fail("203.0.113.1") == 0  # the least recently failing was forgotten


def test_without_trusted_proxies_x_forwarded_for_is_ignored(api, services, fresh_limiter):
    url = services["api_url"]
    codes = [requests.get(f"{url}/api/v1/runbooks", timeout=10, headers={
        "Authorization": f"Bearer sma_guess{i}", "X-Forwarded-For": f"203.0.113.{i}"}
        ).status_code for i in range(FAILURES_ALLOWED + 1)]
    assert codes[-1] == 429  # a new X-Forwarded-For per guess does not escape the limit
    made = requests.post(f"{url}/api/v1/variables", timeout=10, json={"name": "v", "value": 1},
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                  "X-Forwarded-For": "198.51.100.9"})
    assert made.status_code == 201
    event = api.get("/api/v1/audit?limit=1").get_json()["items"][0]
    assert event["client_address"] == "127.0.0.1"


def test_behind_a_trusted_proxy_x_forwarded_for_is_the_client(api, proxied):
    def guess(client_address: str, sent: str | None = None) -> int:
        return requests.get(f"{proxied}/api/v1/runbooks", timeout=10, headers={
            "Authorization": "Bearer sma_guess",
            # the proxy appends the address it saw to what the client sent
            "X-Forwarded-For": f"{sent}, {client_address}" if sent else client_address,
        }).status_code

    codes = [guess("203.0.113.5", sent=f"10.0.0.{i}") for i in range(FAILURES_ALLOWED + 1)]
    assert codes[:FAILURES_ALLOWED] == [401] * FAILURES_ALLOWED and codes[-1] == 429
    assert guess("203.0.113.6") == 401  # another client behind the same proxy
    made = requests.post(f"{proxied}/api/v1/variables", timeout=10, json={"name": "v", "value": 1},
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                  "X-Forwarded-For": "spoofed, 198.51.100.9",
                                  "X-Forwarded-Proto": "https"})
    assert made.status_code == 201
    event = api.get("/api/v1/audit?limit=1").get_json()["items"][0]
    assert event["client_address"] == "198.51.100.9"
    hook_rb = api.create_runbook(content="def main(WEBHOOKDATA):\n    pass\n")["name"]
    hook = requests.post(f"{proxied}/api/v1/webhooks", timeout=10,
                         json={"name": "h", "runbook": hook_rb},
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                  "X-Forwarded-For": "198.51.100.9",
                                  "X-Forwarded-Proto": "https"})
    assert hook.json()["uri"].startswith("https://")  # the scheme the proxy was reached by
