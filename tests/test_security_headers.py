"""Every kind of response carries the security headers (smaweb/security.py); HSTS only over
HTTPS (over a real TLS server in tests/test_web_server.py)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ADMIN_TOKEN

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NO_JOB = "00000000-0000-0000-0000-000000000000"


def _api_json(client, api):
    return client.get("/api/v1/runbooks", headers=AUTH)


def _api_404(client, api):
    return client.get(f"/api/v1/jobs/{NO_JOB}", headers=AUTH)


def _api_401(client, api):
    return client.get("/api/v1/runbooks")


def _api_429(client, api):
    for _ in range(25):  # wrong tokens from one address until the limiter answers
        resp = client.get("/api/v1/runbooks", headers={"Authorization": "Bearer wrong"},
                          environ_base={"REMOTE_ADDR": "192.0.2.7"})
    return resp


def _api_400(client, api):
    return client.post("/api/v1/runbooks", headers=AUTH, json={"name": 5})


def _portal_page(client, api):
    return client.get("/login")


def _portal_redirect(client, api):
    return client.get("/runbooks")  # not signed in: to /login


def _static_file(client, api):
    return client.get("/static/portal.js")


def _health(client, api):
    return client.get("/health")


def _metrics(client, api):
    return client.get("/metrics")


def _event_stream(client, api):
    rb = api.create_runbook()
    job = api.start(rb["name"], worker_group="nobody-serves-this")
    return client.get(f"/api/v1/jobs/{job['id']}/events?timeout=0.2", headers=AUTH)


def _openapi(client, api):
    return client.get("/api/openapi.json")


def _api_docs(client, api):
    return client.get("/api/docs")


KINDS = {
    "api json": (_api_json, 200), "api 404": (_api_404, 404), "api 401": (_api_401, 401),
    "api 429": (_api_429, 429), "api 400": (_api_400, 400), "portal page": (_portal_page, 200),
    "portal redirect": (_portal_redirect, 302), "static file": (_static_file, 200),
    "health": (_health, 200), "metrics": (_metrics, 200), "event stream": (_event_stream, 200),
    "openapi": (_openapi, 200), "api docs": (_api_docs, 200),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_response_carries_the_security_headers(kind, client, api):
    make, status = KINDS[kind]
    resp = make(client, api)
    resp.get_data()  # a stream runs to its end
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    policy = resp.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline script, no eval, no other site
    # files only, and on a page the <style> of that page's nonce (CodeMirror's)
    assert re.fullmatch(r"'self'( 'nonce-[\w-]{24}')?", directives["style-src"])
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'" and directives["base-uri"] == "'none'"
    assert "unsafe" not in policy and "http" not in policy
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in resp.headers  # plain HTTP


def test_a_page_nonce_admits_only_that_page_styles(client):
    first, second = client.get("/login"), client.get("/login")
    nonces = []
    for resp in (first, second):
        style = dict(d.strip().split(" ", 1) for d in
                     resp.headers["Content-Security-Policy"].split(";"))["style-src"]
        assert style.startswith("'self' 'nonce-")
        nonce = style.split("'nonce-", 1)[1].rstrip("'")
        assert f'<meta name="csp-nonce" nonce="{nonce}">' in resp.get_data(as_text=True)
        nonces.append(nonce)
    assert nonces[0] != nonces[1] and len(nonces[0]) >= 22  # fresh and unguessable


def test_hsts_when_the_request_came_over_https(client):
    resp = client.get("/health", base_url="https://localhost")
    assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_api_docs_start_from_a_file(client):
    page = client.get("/api/docs").get_data(as_text=True)
    assert "<script>" not in page and "onload" not in page
    script = client.get("/static/api-docs.js")
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.data
    assert client.get("/api/docs/assets/swagger-ui-bundle.js").status_code == 200
