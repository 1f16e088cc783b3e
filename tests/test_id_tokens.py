"""Job identity tokens: a running job gets a JWT that a cloud verifies against the JWKS of
sma's OpenID Connect discovery document, fetched over HTTP from a real server, as AWS, Azure
and Vault would; the keys rotate, and old ones drop out once their tokens have expired."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from smacommon import signing
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

AWS = "sts.amazonaws.com"
# a job that asks for a token, keeps it and its own job token where the test reads them
# (never in its output: that is masked), and runs until the test lets it end
HELD = """import os, time, smarunbook
folder = {folder!r}
token = smarunbook.id_token({audience!r})
print("token:", token)
for name, value in (("id.jwt", token), ("job.token", os.environ["SMA_JOB_TOKEN"])):
    with open(os.path.join(folder, name + ".part"), "w") as fh:
        fh.write(value)
    os.rename(os.path.join(folder, name + ".part"), os.path.join(folder, name))
deadline = time.monotonic() + 60
while not os.path.exists(os.path.join(folder, "release")) and time.monotonic() < deadline:
    time.sleep(0.02)
"""


class HeldJob:
    """A running job of a published Python runbook, its job token and first identity token."""

    def __init__(self, api, services, folder, audience: str = AWS) -> None:
        self.api, self.url, self.folder = api, services["api_url"], folder
        self.runbook = api.create_runbook(content=HELD.format(folder=str(folder),
                                                              audience=audience))["name"]
        self.job = api.start(self.runbook)
        wait_for(lambda: (folder / "job.token").exists(), 60, "the job's tokens")
        self.id_token = (folder / "id.jwt").read_text()
        self.job_token = (folder / "job.token").read_text()

    def ask(self, **query) -> requests.Response:
        """GET /api/v1/runtime/id-token with the job's own token, over HTTP."""
        return requests.get(f"{self.url}/api/v1/runtime/id-token", params=query, timeout=30,
                            headers={"Authorization": f"Bearer {self.job_token}"})

    def end(self) -> dict:
        (self.folder / "release").touch()
        return self.api.wait(self.job["id"])


@pytest.fixture
def held(api, worker, services, job_tmp):
    job = HeldJob(api, services, job_tmp)
    yield job
    (job_tmp / "release").touch()


def discovery(url: str) -> dict:
    resp = requests.get(f"{url}/.well-known/openid-configuration", timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def verify(url: str, token: str, audience: str = AWS) -> dict:
    """As a relying party does: the issuer's document, its JWKS, the signature and claims."""
    doc = discovery(url)
    key = jwt.PyJWKClient(doc["jwks_uri"], cache_keys=False, timeout=30)
    return jwt.decode(token, key.get_signing_key_from_jwt(token).key, algorithms=["RS256"],
                      audience=audience, issuer=doc["issuer"],
                      options={"require": ["exp", "iat", "nbf", "iss", "sub", "aud", "jti"]})


def test_a_job_token_verifies_against_the_published_jwks(held, api, services):
    doc = discovery(services["api_url"])
    assert doc["issuer"] == services["api_url"]
    assert doc["jwks_uri"] == services["api_url"] + "/.well-known/jwks"
    assert doc["response_types_supported"] == ["id_token"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["scopes_supported"] == ["openid"] and "public" in doc["subject_types_supported"]
    assert {"sub", "aud", "sma:job_id", "sma:runbook_version"} <= set(doc["claims_supported"])

    claims = verify(services["api_url"], held.id_token)
    assert claims["iss"] == services["api_url"] and claims["aud"] == AWS
    assert claims["sub"] == f"runbook:{held.runbook}"
    assert claims["sma:runbook"] == held.runbook
    assert claims["sma:job_id"] == held.job["id"]
    assert claims["sma:runbook_version"] == "1"
    assert claims["sma:worker_group"] == "default"
    assert claims["sma:started_by"] == "user:admin" and claims["sma:is_test"] is False
    assert claims["exp"] - claims["iat"] == 600 and claims["nbf"] <= time.time() + 1
    assert claims["iat"] <= time.time() + 1 < claims["exp"]
    assert uuid.UUID(hex=claims["jti"])

    longest = held.ask(audience="vault", lifetime=3600)
    assert longest.status_code == 200, longest.text
    claims = verify(services["api_url"], longest.json()["value"], "vault")
    assert claims["exp"] - claims["iat"] == 3600  # at most one hour
    assert claims["exp"] == int(
        __import__("datetime").datetime.fromisoformat(longest.json()["expires_at"]).timestamp())
    # a token for one audience is refused by another
    with pytest.raises(jwt.InvalidAudienceError):
        verify(services["api_url"], held.id_token, "api://AzureADTokenExchange")

    job = held.end()
    assert job["status"] == "Completed", job
    out = api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True)
    assert out == "token: ***\n"  # masked like any secret the job holds
    events = api.get("/api/v1/audit", query_string={"action": "job.id_token"}).get_json()
    mine = [e for e in events["items"] if e["target"] == f"/api/v1/jobs/{job['id']}"]
    assert len(mine) == 2 and {e["door"] for e in mine} == {"job"}
    assert {e["details"]["audience"] for e in mine} == {AWS, "vault"}
    assert held.id_token not in json.dumps(events)
    # its job token died with the job: no more identity tokens
    after = held.ask(audience=AWS)
    assert after.status_code == 401, after.text
    assert "ended" in after.json()["message"]


def test_kid_is_the_rfc7638_thumbprint_of_the_key(held, services):
    header = jwt.get_unverified_header(held.id_token)
    assert header["alg"] == "RS256"
    keys = requests.get(services["api_url"] + "/.well-known/jwks", timeout=30).json()["keys"]
    (jwk,) = [k for k in keys if k["kid"] == header["kid"]]
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]},
                           separators=(",", ":")).encode()
    assert header["kid"] == base64.urlsafe_b64encode(
        hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    assert jwk["use"] == "sig" and jwk["alg"] == "RS256" and jwk["kty"] == "RSA"
    # RFC 7638, section 3.1: the thumbprint of its example key
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
         "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR"
         "0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTW"
         "hAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
    number = int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big")
    example = rsa.RSAPublicNumbers(65537, number).public_key()
    assert signing.thumbprint(example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize(("query", "field"), [
    ({"audience": ""}, "audience"),
    ({"audience": "sts.amazonaws.com evil"}, "audience"),
    ({"audience": "a\x01b"}, "audience"),
    ({"audience": "a\nb"}, "audience"),
    ({"audience": "a\tb"}, "audience"),
    ({"audience": "a\x7fb"}, "audience"),
    ({"audience": "a\x00b"}, "audience"),
    ({"audience": "caf\u00e9"}, "audience"),
    ({"audience": "a" * 256}, "audience"),
    ({}, "audience"),
    ({"audience": AWS, "lifetime": 3601}, "lifetime"),
    ({"audience": AWS, "lifetime": 10}, "lifetime"),
    ({"audience": AWS, "lifetime": "soon"}, "lifetime"),
    ({"audience": AWS, "lifetime": 10**30}, "lifetime"),
    ({"audience": AWS, "scope": "x"}, "scope"),
])
def test_bad_requests_are_a_clear_400(held, query, field):
    resp = held.ask(**query)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert field in body.get("errors", {}) or field in body["message"], body
    if field == "lifetime" and query["lifetime"] == 3601:
        assert "3600" in json.dumps(body)


def test_no_user_token_reaches_the_endpoint(api, client, services):
    assert client.get("/api/v1/runtime/id-token?audience=x").status_code == 401
    assert api.get("/api/v1/runtime/id-token?audience=x").status_code == 403  # admin
    made = api.post("/api/v1/tokens", json={"name": "ops", "role": "admin"}).get_json()
    resp = client.get("/api/v1/runtime/id-token?audience=x",
                      headers={"Authorization": f"Bearer {made['token']}"})
    assert resp.status_code == 403 and "running job" in resp.get_json()["message"]
    # the documents are public, over real HTTP too, and cacheable
    for path in ("/.well-known/openid-configuration", "/.well-known/jwks"):
        resp = requests.get(services["api_url"] + path, timeout=30)
        assert resp.status_code == 200 and resp.headers["Cache-Control"].startswith("public")


def test_bash_runbook_gets_a_token(api, worker, services, job_tmp):
    content = ('tok=$(sma_id_token vault 300) || exit 1\n'
               f'printf %s "$tok" > {job_tmp}/bash.jwt\n'
               'echo "token: $tok"\n'
               'sma_id_token "bad audience" || echo "refused $?"\n'
               'sma_id_token || echo "usage $?"\n')
    job = api.run(content, runbook_type="bash")
    assert job["status"] == "Completed", job
    token = (job_tmp / "bash.jwt").read_text()
    claims = verify(services["api_url"], token, "vault")
    assert claims["sub"].startswith("runbook:rb-") and claims["exp"] - claims["iat"] == 300
    records = api.records(job["id"])
    texts = [(r["stream"], r["text"]) for r in records]
    assert ("Output", "token: ***") in texts and ("Output", "refused 1") in texts
    assert ("Output", "usage 2") in texts
    assert any("audience must be 1 to 255 visible ASCII" in t for s, t in texts if s == "Error")
    assert token not in json.dumps(records)


def test_a_draft_test_job_says_so(api, worker, services, job_tmp):
    content = ("import smarunbook\n"
               f"open({str(job_tmp / 'draft.jwt')!r}, 'w').write(smarunbook.id_token('vault'))\n")
    rb = api.create_runbook(content=content, publish=False)
    resp = api.post(f"/api/v1/runbooks/{rb['name']}/draft/test", json={"wait": 60})
    assert resp.status_code == 201 and resp.get_json()["status"] == "Completed", resp.get_json()
    claims = verify(services["api_url"], (job_tmp / "draft.jwt").read_text(), "vault")
    assert claims["sma:is_test"] is True and claims["sma:runbook_version"] == "draft"
    assert claims["sub"] == f"runbook:{rb['name']}"


@pytest.mark.pwsh
def test_powershell_runbook_gets_a_token(api, worker, services, job_tmp):
    content = ("$tok = Get-SmaIdToken -Audience 'api://AzureADTokenExchange' "
               "-LifetimeSeconds 900\n"
               f"[System.IO.File]::WriteAllText('{job_tmp}/ps.jwt', $tok)\n"
               "Write-Output \"token: $tok\"\n")
    job = api.run(content, runbook_type="powershell")
    assert job["status"] == "Completed", job
    token = (job_tmp / "ps.jwt").read_text()
    claims = verify(services["api_url"], token, "api://AzureADTokenExchange")
    assert claims["exp"] - claims["iat"] == 900
    assert api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True) == "token: ***\n"


def _sma(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smacli.main", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def test_rotation_signs_with_the_new_key_and_old_tokens_still_verify(held, api, services):
    old_kid = jwt.get_unverified_header(held.id_token)["kid"]
    rotated = _sma("keys", "rotate-signing", env=services["env"])
    assert rotated.returncode == 0, rotated.stderr
    resp = held.ask(audience=AWS)
    assert resp.status_code == 200, resp.text
    new_token = resp.json()["value"]
    new_kid = jwt.get_unverified_header(new_token)["kid"]
    assert new_kid != old_kid and new_kid in rotated.stdout
    kids = [k["kid"] for k in requests.get(services["api_url"] + "/.well-known/jwks",
                                           timeout=30).json()["keys"]]
    assert kids[0] == new_kid and old_kid in kids  # the newest first
    assert verify(services["api_url"], new_token)["sma:job_id"] == held.job["id"]
    assert verify(services["api_url"], held.id_token)["sma:job_id"] == held.job["id"]
    events = api.get("/api/v1/audit", query_string={"action": "keys.rotate_signing"}).get_json()
    assert [(e["door"], e["details"]["kid"]) for e in events["items"]] == [("cli", new_kid)]


def test_keys_drop_out_once_their_tokens_have_expired(tmp_path):
    folder = tmp_path / "signing-keys"
    t0 = time.time() - 10 * 3600
    first, _ = signing.rotate(folder, now=t0)
    second, removed = signing.rotate(folder, now=t0 + 100)
    assert removed == []
    ring = signing.KeyRing(folder)
    token = ring.sign({"sub": "runbook:x", "exp": int(t0 + 100 + 3600)})
    assert jwt.get_unverified_header(token)["kid"] == second.kid  # the newest signs

    def kids(now: float) -> list[str]:
        return [k["kid"] for k in ring.jwks(now)["keys"]]

    # the first key signed until the second was made; its last token lives an hour more
    retired = t0 + 100 + signing.MAX_LIFETIME
    assert kids(retired) == [second.kid, first.kid]
    assert kids(t0 + 100 + signing.RETAIN_SECONDS + 1) == [second.kid]
    third, removed = signing.rotate(folder, now=t0 + 100 + signing.RETAIN_SECONDS + 1)
    assert [k.kid for k in removed] == [first.kid] and not first.path.exists()
    assert [k.kid for k in ring.keys()] == [second.kid, third.kid]  # re-read: folder changed


def test_the_first_key_is_made_once_and_kept_private(tmp_path):
    folder = tmp_path / "data" / "signing-keys"
    rings = [signing.KeyRing(folder) for _ in range(8)]  # as many processes would
    kids: list[str] = []
    threads = [threading.Thread(target=lambda r=r: kids.append(r.keys()[-1].kid))
               for r in rings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(kids) == 8 and len(set(kids)) == 1
    files = [p for p in folder.iterdir() if p.suffix == ".pem"]
    assert len(files) == 1 and not [p for p in folder.iterdir() if p.name.startswith(".tmp")]
    assert folder.stat().st_mode & 0o777 == 0o700
    assert files[0].stat().st_mode & 0o777 == 0o600


def test_issuer_comes_from_the_setting(services, tmp_path):
    from smacommon.errors import ConfigurationError
    from smacommon.settings import load_settings
    from smaweb import create_app

    settings = load_settings(oidc_issuer_url="https://sma.example.com/", data_dir=tmp_path)
    app = create_app({"TESTING": True, "SMA_SETTINGS": settings})
    doc = app.test_client().get("/.well-known/openid-configuration").get_json()
    assert doc["issuer"] == "https://sma.example.com"
    assert doc["jwks_uri"] == "https://sma.example.com/.well-known/jwks"
    for bad in ("sma.example.com", "ftp://x", "https://x/?a=1"):
        with pytest.raises(ConfigurationError, match="SMA_OIDC_ISSUER_URL"):
            load_settings(oidc_issuer_url=bad)

