"""The ID token checks of OpenID Connect sign-in (smacommon/oidc.py), with tokens these tests
sign themselves and a small provider serving the discovery document and JWKS on a free port:
a wrong nonce, audience, issuer or algorithm, an expired or tampered token are refused, each
saying why; a new key id is fetched once (key rotation), an unknown one refused after it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from smacommon.oidc import OidcRefused, Provider, ProviderUnavailable
from smacommon.settings import load_settings

CLIENT = "sma"


class Jwks:
    """What the small provider serves, and how often its keys were asked for."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0
        self.issuer = ""

    def add(self, kid: str) -> rsa.RSAPrivateKey:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self.keys[kid]

    def document(self) -> dict:
        keys = []
        for kid, key in self.keys.items():
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**public, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}


@pytest.fixture
def issuer():
    jwks = Jwks()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path.endswith("/.well-known/openid-configuration"):
                body = {"issuer": jwks.issuer, "jwks_uri": f"{jwks.issuer}/jwks",
                        "authorization_endpoint": f"{jwks.issuer}/authorize",
                        "token_endpoint": f"{jwks.issuer}/token"}
            elif self.path.endswith("/jwks"):
                jwks.fetches += 1
                body = jwks.document()
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802  the token endpoint: every refresh token is spent
            data = b'{"error": "invalid_grant", "error_description": "Token is not active"}'
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    jwks.issuer = f"http://127.0.0.1:{server.server_address[1]}/realm"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield jwks
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def provider_of(jwks: Jwks) -> Provider:
    return Provider(load_settings(oidc_provider_url=jwks.issuer, oidc_client_id=CLIENT,
                                  oidc_client_secret="s", oidc_timeout_seconds=2,
                                  role_mapping={"ops": "operator"}))


def token(jwks: Jwks, kid: str = "k1", key=None, **claims) -> str:
    now = int(time.time())
    body = {"iss": jwks.issuer, "sub": "u-1", "aud": CLIENT, "iat": now, "exp": now + 300,
            "nonce": "n-1", "email": "bob@example.com", "groups": ["ops"]}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key or jwks.keys[kid], algorithm="RS256", headers={"kid": kid})


def test_a_valid_token_gives_its_claims(issuer):
    issuer.add("k1")
    claims = provider_of(issuer).verify(token(issuer), "n-1")
    assert claims["sub"] == "u-1" and claims["groups"] == ["ops"]


@pytest.mark.parametrize("claims, nonce, said", [
    ({"nonce": "other"}, "n-1", "nonce differs"),
    ({"nonce": None}, "n-1", "nonce differs"),
    ({"aud": "someone-else"}, "n-1", "another client"),
    ({"aud": ["someone-else", CLIENT]}, "n-1", "authorized party"),
    ({"iss": "https://evil.example.org"}, "n-1", "another issuer"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "n-1", "expired"),
    ({"iat": None}, "n-1", "iat"),
])
def test_wrong_claims_are_refused_saying_why(issuer, claims, nonce, said):
    issuer.add("k1")
    with pytest.raises(OidcRefused, match=said):
        provider_of(issuer).verify(token(issuer, **claims), nonce)


def test_a_tampered_token_is_refused(issuer):
    issuer.add("k1")
    head, body, signature = token(issuer).split(".")
    forged = jwt.utils.base64url_encode(json.dumps(
        {**json.loads(jwt.utils.base64url_decode(body)), "groups": ["sma-admins"]}).encode())
    with pytest.raises(OidcRefused, match="signature does not verify"):
        provider_of(issuer).verify(f"{head}.{forged.decode()}.{signature}", "n-1")
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(OidcRefused, match="signature does not verify"):
        provider_of(issuer).verify(token(issuer, key=stranger), "n-1")


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_unsigned_and_shared_secret_tokens_are_refused(issuer, alg):
    issuer.add("k1")
    sent = jwt.encode({"iss": issuer.issuer, "sub": "u", "aud": CLIENT}, "s" * 32 if
                      alg == "HS256" else None, algorithm=alg)
    with pytest.raises(OidcRefused, match="algorithm"):
        provider_of(issuer).verify(sent, None)
    with pytest.raises(OidcRefused, match="not a JWT"):
        provider_of(issuer).verify("not-a-token", None)


def test_a_rotated_key_is_fetched_once_and_an_unknown_one_refused(issuer):
    issuer.add("k1")
    provider = provider_of(issuer)
    provider.verify(token(issuer), "n-1")
    provider.verify(token(issuer), "n-1")
    assert issuer.fetches == 1  # kept between sign-ins
    issuer.add("k2")
    del issuer.keys["k1"]
    assert provider.verify(token(issuer, kid="k2"), "n-1")["sub"] == "u-1"
    assert issuer.fetches == 2  # one more fetch for the new key id
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(OidcRefused, match="does not publish"):
        provider.verify(token(issuer, kid="k9", key=stranger), "n-1")
    assert issuer.fetches == 3  # asked once for the unknown id, then refused


def test_a_provider_naming_another_issuer_is_refused(issuer):
    issuer.add("k1")
    settings = load_settings(oidc_provider_url=issuer.issuer + "x", oidc_client_id=CLIENT,
                             oidc_client_secret="s", role_mapping={"ops": "operator"})
    # the document at <issuer>x/.well-known/... names <issuer> (a mix-up, or an impostor)
    with pytest.raises(ProviderUnavailable, match="names another issuer"):
        Provider(settings).verify(token(issuer), "n-1")


def test_a_refused_refresh_ends_the_session_and_a_provider_down_is_a_503(issuer):
    issuer.add("k1")
    provider = provider_of(issuer)
    assert provider.refresh("spent-refresh-token", "u-1") is None  # invalid_grant: ended
    from smacommon.embedded_redis import free_port

    provider._discovery["token_endpoint"] = f"http://127.0.0.1:{free_port()}/token"  # closed
    with pytest.raises(ProviderUnavailable):  # the session stays, for when it is back
        provider.refresh("refresh-token", "u-1")
