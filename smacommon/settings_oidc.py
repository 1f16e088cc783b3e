"""The settings of OpenID Connect sign-in (SMA_OIDC_PROVIDER_URL, SMA_OIDC_CLIENT_*, ...).

Not SMA_OIDC_ISSUER_URL: that one is sma's own issuer, of the identity tokens it gives jobs.
These name the provider people sign in with (Keycloak, Entra ID, Google, ...). Sign-in with
it is off while SMA_OIDC_PROVIDER_URL is empty; the role of a person comes from the groups
claim through SMA_ROLE_MAPPING, as for the directory.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from smacommon.settings_ldap import LdapSettings

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_CLAIM_RULE = r"^[A-Za-z0-9_:/.\-]{1,128}$"


class OidcSettings(LdapSettings):
    """SMA_OIDC_* of sign-in (README, "Sign in with OpenID Connect"), beside the
    directory's settings and SMA_ROLE_MAPPING, which both share."""

    # the provider's issuer; its discovery document is <this>/.well-known/openid-configuration
    oidc_provider_url: str = ""
    oidc_provider_name: str = Field(default="OpenID Connect", min_length=1, max_length=64)
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid profile email"
    oidc_groups_claim: str = Field(default="groups", pattern=_CLAIM_RULE)
    oidc_username_claim: str = Field(default="email", pattern=_CLAIM_RULE)
    # every call to the provider (discovery, keys, tokens) gets this long
    oidc_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # a session's groups are read again (with its refresh token) this often; without a
    # refresh token the session ends then (at most 15 minutes, as for the directory)
    oidc_refresh_seconds: float = Field(default=900.0, gt=0, le=900)

    @field_validator("oidc_provider_url")
    @classmethod
    def _provider_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("https", "http") or not parts.hostname or parts.query \
                    or parts.fragment:
                raise ValueError("must be the provider's issuer URL, such as "
                                 "https://keycloak.example.org/realms/corp (no query)")
            if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
                raise ValueError("must be https:// (http:// only for a provider on this "
                                 "machine): tokens and secrets would travel in clear text")
        return value

    @field_validator("oidc_scopes")
    @classmethod
    def _scopes(cls, value: str) -> str:
        scopes = value.replace(",", " ").split()
        if "openid" not in scopes:
            raise ValueError('must include "openid", such as "openid profile email"')
        return " ".join(scopes)

    @model_validator(mode="after")
    def _oidc_complete(self) -> OidcSettings:
        if not self.oidc_provider_url:
            return self
        if not self.oidc_client_id.strip():
            raise ValueError("SMA_OIDC_CLIENT_ID: must be set with SMA_OIDC_PROVIDER_URL "
                             "(the client id registered with the provider)")
        if not self.oidc_client_secret:
            raise ValueError("SMA_OIDC_CLIENT_SECRET: must be set with SMA_OIDC_PROVIDER_URL "
                             "(sma signs in as a confidential client)")
        if not self.roles_by_group:
            raise ValueError("SMA_ROLE_MAPPING: must map at least one group of the "
                             f"{self.oidc_groups_claim!r} claim to a role when "
                             "SMA_OIDC_PROVIDER_URL is set, or nobody could sign in")
        return self

    def _only_dns_mapped(self) -> bool:
        return not self.oidc_provider_url  # group names as the provider's claim has them
