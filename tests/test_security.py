"""Roles, tokens, audit, brute-force slowing and key rotation."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from cryptography.fernet import Fernet

from tests.conftest import Api

ROLES = ("reader", "operator", "author", "admin")


def _token(api, role, **extra):
    resp = api.post("/api/v1/tokens", json={"name": f"{role}-{uuid.uuid4().hex[:4]}",
                                            "role": role, **extra})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


@pytest.fixture
def world(api):
    api.create_runbook("rb", content="print(1)\n")
    job = api.start("rb", worker_group="nobody-serves-this")
    api.post("/api/v1/variables", json={"name": "v", "value": 1})
    return {"job": job["id"]}


# (method, path, body, least role)
def _matrix(world):
    job = world["job"]
    return [
        ("GET", "/api/v1/runbooks", None, "reader"),
        ("GET", "/api/v1/jobs", None, "reader"),
        ("GET", f"/api/v1/jobs/{job}", None, "reader"),
        ("GET", "/api/v1/variables", None, "reader"),
        ("POST", "/api/v1/runbooks/rb/start", {}, "operator"),
        ("POST", f"/api/v1/jobs/{job}/suspend", None, "operator"),
        ("POST", "/api/v1/runbooks", {"name": "n", "runbook_type": "python", "content": "x=1"},
         "author"),
        ("PATCH", "/api/v1/runbooks/rb", {"description": "d"}, "author"),
        ("PUT", "/api/v1/runbooks/rb/draft", {"content": "x=2"}, "author"),
        ("POST", "/api/v1/variables", {"name": "w", "value": 2}, "author"),
        ("DELETE", "/api/v1/variables/v", None, "author"),
        ("GET", "/api/v1/tokens", None, "admin"),
        ("GET", "/api/v1/audit", None, "admin"),
        ("GET", "/api/v1/workers", None, "admin"),
        ("POST", "/api/v1/admin/purge-jobs", {}, "admin"),
    ]


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(api, client, world, role):
    token = Api(client, _token(api, role)["token"])
    for method, path, body, least in _matrix(world):
        resp = token.client.open(path, method=method, json=body, headers=token.headers)
        allowed = ROLES.index(role) >= ROLES.index(least)
        if allowed:
            assert resp.status_code != 403, (role, method, path, resp.get_json())
            assert resp.status_code < 500
        else:
            assert resp.status_code == 403, (role, method, path, resp.status_code)
            assert f"needs the {least} role" in resp.get_json()["message"]


def test_token_secret_shown_once_and_only_hashed(api, services):
    created = _token(api, "reader")
    assert created["token"].startswith("sma_")
    listed = api.get("/api/v1/tokens").get_data(as_text=True)
    assert created["token"] not in listed
    assert "token_hash" not in listed


def test_revoked_and_expired_tokens_get_401(api, client, services):
    created = _token(api, "reader")
    reader = Api(client, created["token"])
    assert reader.get("/api/v1/runbooks").status_code == 200
    assert api.delete(f"/api/v1/tokens/{created['id']}").get_json()["revoked"] is True
    resp = reader.get("/api/v1/runbooks")
    assert resp.status_code == 401 and "revoked" in resp.get_json()["message"]
    expiring = _token(api, "reader", expires_in_days=1)
    from sqlalchemy import text

    from smacommon.db import get_engine

    engine = get_engine(services["database_url"])
    with engine.begin() as conn:
        conn.execute(text("UPDATE api_tokens SET expires_at = :t WHERE name = :n"),
                     {"t": "2000-01-01 00:00:00.000000" if engine.dialect.name == "sqlite"
                      else "2000-01-01", "n": expiring["name"]})
    assert Api(client, expiring["token"]).get("/api/v1/runbooks").status_code == 401
    assert api.delete(f"/api/v1/tokens/{uuid.uuid4()}").status_code == 404
    bad = api.post("/api/v1/tokens", json={"name": "x", "role": "superuser"})
    assert bad.status_code == 400 and "role" in bad.get_json()["errors"]


def test_every_change_is_audited_without_secrets(api, world):
    api.post("/api/v1/credentials", json={"name": "c", "username": "u", "password": "pw-123456"})
    api.patch("/api/v1/runbooks/rb", json={"description": "x"})
    api.post(f"/api/v1/jobs/{world['job']}/stop")
    api.post("/api/v1/runbooks", json={"name": "bad name", "runbook_type": "python",
                                       "content": "x"})  # refused: not audited
    events = api.get("/api/v1/audit?limit=100").get_json()["items"]
    assert len(events) == len({e["id"] for e in events})
    actions = [e["action"] for e in events]
    assert "credential.create" in actions
    assert "runbook.update" in actions
    assert "job.stop" in actions
    assert "job.start" in actions
    api.post("/api/v1/admin/purge-jobs", json={})
    latest = api.get("/api/v1/audit?limit=1").get_json()["items"][0]
    assert latest["action"] == "jobs.purge"
    assert all(e["actor"] == "admin" and e["door"] == "api" and e["client_address"]
               for e in events)
    assert actions.count("runbook.create") == 1  # the refused create is not there
    assert "pw-123456" not in api.get("/api/v1/audit?limit=100").get_data(as_text=True)
    mine = api.get("/api/v1/audit?target=/api/v1/credentials").get_json()["items"]
    assert [e["target"] for e in mine] == ["/api/v1/credentials/c"]


def test_wrong_tokens_are_slowed_down(client):
    from smaweb.limiter import FAILURES_ALLOWED

    headers = {"Authorization": "Bearer guess"}
    codes = [client.get("/api/v1/runbooks", headers=headers).status_code
             for _ in range(FAILURES_ALLOWED + 2)]
    assert codes[:FAILURES_ALLOWED] == [401] * FAILURES_ALLOWED
    assert codes[-1] == 429
    resp = client.get("/api/v1/runbooks", headers=headers)
    assert "Retry-After" in resp.headers and "Too many" in resp.get_json()["message"]


def _sma(*args, env=None):
    return subprocess.run([sys.executable, "-m", "smacli.main", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_sma_token_create_on_a_new_install(tmp_path, client):
    env = {"SMA_DATA_DIR": str(tmp_path), "SMA_DATABASE_URL": f"sqlite:///{tmp_path}/n.db"}
    proc = _sma("token", "create", "--name", "first", "--role", "admin", env=env)
    assert proc.returncode == 0, proc.stderr
    secret = proc.stdout.rsplit(" ", 1)[-1].strip()
    assert secret.startswith("sma_")
    from sqlalchemy.orm import Session

    from smacommon.db import get_engine
    from smacommon.services.tokens import find_token

    with Session(get_engine(env["SMA_DATABASE_URL"])) as s:
        assert find_token(s, secret).role == "admin"
    bad = _sma("token", "create", "--name", "x", "--role", "god", env=env)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_key_rotation_keeps_every_secret_readable(api, services, monkeypatch):
    from smacommon.crypto import get_crypto
    from smacommon.db import get_engine
    from smacommon.models import Credential
    from smacommon.services.assets import rotate_secrets
    from smacommon.services.audit import Actor
    from smacommon.settings import load_settings

    old = get_crypto(load_settings())
    api.post("/api/v1/credentials", json={"name": "rot", "username": "u", "password": "pw-rot"})
    api.post("/api/v1/variables", json={"name": "rv", "value": [1, "x"], "is_encrypted": True})
    new_key = Fernet.generate_key().decode()
    key_file = load_settings().data_dir / "encryption.key"
    old_key = key_file.read_text().strip()
    settings = load_settings(encryption_keys=f"{new_key},{old_key}")
    count = rotate_secrets(get_engine(services["database_url"]), get_crypto(settings),
                           Actor("cli:ops", "cli", "host-1"))
    assert count >= 2
    (event,) = api.get("/api/v1/audit?actor=cli:ops").get_json()["items"]
    assert (event["action"], event["door"], event["details"]) == \
        ("keys.rotate", "cli", {"secrets": count})
    only_new = get_crypto(load_settings(encryption_keys=new_key))
    from sqlalchemy.orm import Session

    with Session(get_engine(services["database_url"])) as s:
        cred = s.query(Credential).filter_by(name="rot").one()
        assert only_new.decrypt_str(cred.password_encrypted) == "pw-rot"
        with pytest.raises(Exception, match="cannot be decrypted"):
            old.decrypt_str(cred.password_encrypted)


def test_bad_encryption_key_is_a_clear_error(tmp_path):
    proc = _sma("keys", "rotate", env={"SMA_DATA_DIR": str(tmp_path),
                                       "SMA_ENCRYPTION_KEYS": "not-a-key"})
    assert proc.returncode == 2
    assert "SMA_ENCRYPTION_KEYS" in proc.stderr and "Traceback" not in proc.stderr
