"""Job identity tokens: the request a job makes, the token, and the documents an OIDC
relying party (AWS, Microsoft Entra ID, Vault) reads to trust them."""

from __future__ import annotations

import re

import marshmallow as ma

from smacommon.schemas.common import ResponseSchema, StrictSchema
from smacommon.signing import MAX_LIFETIME

DEFAULT_LIFETIME = 600
MIN_LIFETIME = 60
# visible ASCII: an audience is a URI or a name ("sts.amazonaws.com",
# "api://AzureADTokenExchange"), compared byte for byte by whoever checks it
_AUDIENCE = re.compile(r"[\x21-\x7e]{1,255}")


def _audience(value: str) -> None:
    if not _AUDIENCE.fullmatch(value):
        raise ma.ValidationError(
            "audience must be 1 to 255 visible ASCII characters (no spaces, no control "
            "characters), e.g. sts.amazonaws.com or api://AzureADTokenExchange.")


class IdTokenArgsSchema(StrictSchema):
    audience = ma.fields.String(required=True, validate=_audience, metadata={
        "description": "Who the token is for: its `aud` claim, which the receiver checks "
                       "(sts.amazonaws.com, api://AzureADTokenExchange, a Vault role's "
                       "bound_audiences)."})
    lifetime = ma.fields.Integer(load_default=DEFAULT_LIFETIME, validate=ma.validate.Range(
        min=MIN_LIFETIME, max=MAX_LIFETIME,
        error=f"lifetime is a number of seconds from {MIN_LIFETIME} to {MAX_LIFETIME}."),
        metadata={"description": f"Seconds the token is valid (default {DEFAULT_LIFETIME}, "
                                 f"at most {MAX_LIFETIME})."})


class IdTokenSchema(ResponseSchema):
    value = ma.fields.String(required=True, metadata={
        "description": "The token: a JWT signed with RS256 by a key of /.well-known/jwks."})
    expires_at = ma.fields.DateTime(required=True, metadata={
        "description": "When it expires (its `exp` claim)."})


class OpenIdConfigurationSchema(ResponseSchema):
    issuer = ma.fields.String(required=True, metadata={
        "description": "The `iss` of every job identity token (SMA_OIDC_ISSUER_URL)."})
    jwks_uri = ma.fields.String(required=True)
    subject_types_supported = ma.fields.List(ma.fields.String(), required=True)
    response_types_supported = ma.fields.List(ma.fields.String(), required=True)
    claims_supported = ma.fields.List(ma.fields.String(), required=True)
    id_token_signing_alg_values_supported = ma.fields.List(ma.fields.String(), required=True)
    scopes_supported = ma.fields.List(ma.fields.String(), required=True)


class JwkSchema(ResponseSchema):
    kty = ma.fields.String(required=True)
    use = ma.fields.String(required=True)
    alg = ma.fields.String(required=True)
    kid = ma.fields.String(required=True, metadata={
        "description": "The key's RFC 7638 thumbprint; a token names its key by it."})
    n = ma.fields.String(required=True)
    e = ma.fields.String(required=True)


class JwksSchema(ResponseSchema):
    keys = ma.fields.List(ma.fields.Nested(JwkSchema), required=True, metadata={
        "description": "The key that signs now, and older keys until the tokens they signed "
                       "have expired."})
