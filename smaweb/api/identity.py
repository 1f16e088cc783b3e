"""/.well-known/openid-configuration and /.well-known/jwks: what a cloud reads to trust the
identity tokens of sma's jobs (public, no token, cacheable).

sma is an OpenID Connect provider the way GitHub Actions is one: no sign-in, no
authorization endpoint; only the discovery document and the keys, so AWS, Microsoft Entra
ID and Vault can verify the tokens jobs get from /api/v1/runtime/id-token.
"""

from __future__ import annotations

from flask import after_this_request, current_app, request

from smacommon.schemas.identity import JwksSchema, OpenIdConfigurationSchema
from smacommon.services.identity import CLAIMS
from smacommon.signing import ALGORITHM, KeyRing, keyring
from smaweb.extensions import SmaBlueprint

blp = SmaBlueprint("identity", __name__, url_prefix="/.well-known",
                   description="The OpenID Connect discovery document and signing keys of "
                               "job identity tokens (no token).")
JWKS_PATH = "/.well-known/jwks"
DISCOVERY_MAX_AGE = 3600
JWKS_MAX_AGE = 300  # a rotated key must reach verifiers soon, and they refetch on a new kid


def issuer() -> str:
    """The `iss` of the tokens: SMA_OIDC_ISSUER_URL, else the URL this request came to."""
    configured = current_app.config["SMA_SETTINGS"].oidc_issuer_url
    return configured or request.url_root.rstrip("/")


def signing_keys() -> KeyRing:
    return keyring(current_app.config["SMA_SETTINGS"].data_dir)


def _cacheable(max_age: int):
    def after(response):
        response.headers["Cache-Control"] = f"public, max-age={max_age}"
        return response
    return after


@blp.route("/openid-configuration", methods=["GET"])
@blp.operation_id("getOpenIdConfiguration")
@blp.doc(security=[])
@blp.response(200, OpenIdConfigurationSchema)
def openid_configuration():
    """The OpenID Connect discovery document of job identity tokens."""
    after_this_request(_cacheable(DISCOVERY_MAX_AGE))
    base = issuer()
    return {
        "issuer": base,
        "jwks_uri": base + JWKS_PATH,
        "subject_types_supported": ["public"],
        "response_types_supported": ["id_token"],
        "claims_supported": list(CLAIMS),
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "scopes_supported": ["openid"],
    }


@blp.route("/jwks", methods=["GET"])
@blp.operation_id("getJwks")
@blp.doc(security=[])
@blp.response(200, JwksSchema)
def jwks():
    """The public keys that verify job identity tokens (JWKS)."""
    after_this_request(_cacheable(JWKS_MAX_AGE))
    return signing_keys().jwks()
