"""The settings of LDAP / Active Directory sign-in (SMA_LDAP_*, SMA_ROLE_MAPPING).

Kept apart from smacommon.settings so that file stays one idea; Settings inherits these
fields and their checks, so a bad value is refused at start with the variable's name.
Sign-in with the directory is off while SMA_LDAP_URL is empty.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings

from smacommon.roles import GLOBAL_ROLES as ROLES  # none: only what role bindings give

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class LdapSettings(BaseSettings):
    """SMA_LDAP_* and SMA_ROLE_MAPPING (README, "Sign in with LDAP / Active Directory")."""

    ldap_url: str = ""  # ldaps://host[:port], or ldap://host with SMA_LDAP_START_TLS
    ldap_start_tls: bool = False
    ldap_ca_file: str = ""  # CA bundle that signed the directory's certificate
    ldap_bind_dn: str = ""  # the account sma searches with (empty: an anonymous search)
    ldap_bind_password: str = ""
    ldap_user_base: str = ""  # where people are searched, e.g. ou=people,dc=example,dc=org
    ldap_user_filter: str = "(uid={username})"  # AD: (sAMAccountName={username})
    ldap_username_attribute: str = "uid"  # the name sma records; AD: sAMAccountName
    # empty: the person's memberOf attribute (AD, OpenLDAP's memberof overlay); set: groups
    # are searched under it with SMA_LDAP_GROUP_FILTER (groupOfNames, groupOfUniqueNames)
    ldap_group_base: str = ""
    ldap_group_filter: str = "(|(member={user_dn})(uniqueMember={user_dn}))"
    ldap_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # a signed-in person's groups are read again at least this often (at most 15 minutes)
    ldap_refresh_seconds: float = Field(default=900.0, gt=0, le=900)
    # JSON: {"<group DN>": "<role>", ...}; the highest role of a person's groups wins ("none":
    # signs in with only what role bindings give the person or their groups)
    # (a string here, read by `roles_by_group`: pydantic-settings would refuse bad JSON
    # in a dict field before this file's message could name the problem)
    role_mapping: str = ""

    @property
    def roles_by_group(self) -> dict[str, str]:
        """SMA_ROLE_MAPPING read: group DN -> role ({} when unset)."""
        return json.loads(self.role_mapping) if self.role_mapping.strip() else {}

    @field_validator("role_mapping", mode="before")
    @classmethod
    def _role_mapping(cls, raw: object) -> object:
        if isinstance(raw, dict):
            raw = json.dumps(raw)
        if not isinstance(raw, str) or not raw.strip():
            return raw
        try:
            value = json.loads(raw)
        except ValueError:
            raise ValueError('must be JSON mapping group DNs to roles: {"cn=sma-admins,'
                             'ou=groups,dc=example,dc=org": "admin"}') from None
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValueError('must be a JSON object of "group DN": "role"')
        unknown = sorted({v for v in value.values() if v not in ROLES})
        if unknown:
            raise ValueError(f"unknown role {', '.join(map(repr, unknown))}: roles are "
                             f"{', '.join(ROLES)}")
        if any(not k.strip() for k in value):
            raise ValueError("a group's name or DN cannot be empty")
        return raw

    @field_validator("ldap_url")
    @classmethod
    def _ldap_url(cls, value: str) -> str:
        value = value.strip()
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
                raise ValueError("must be ldaps://host[:port] (or ldap://host[:port] with "
                                 "SMA_LDAP_START_TLS=true)")
        return value

    @field_validator("ldap_user_filter")
    @classmethod
    def _user_filter(cls, value: str) -> str:
        if "{username}" not in value or not value.startswith("("):
            raise ValueError("must be an LDAP filter with {username} where the name goes, "
                             "such as (uid={username}) or (sAMAccountName={username})")
        return value

    @field_validator("ldap_group_filter")
    @classmethod
    def _group_filter(cls, value: str) -> str:
        if "{user_dn}" not in value or not value.startswith("("):
            raise ValueError("must be an LDAP filter with {user_dn}, such as (member={user_dn})")
        return value

    def _only_dns_mapped(self) -> bool:
        """Whether every key of SMA_ROLE_MAPPING must be a DN (no other sign-in maps groups
        by name: smacommon.settings_oidc says otherwise when OpenID Connect is on)."""
        return True

    @model_validator(mode="after")
    def _ldap_complete(self) -> LdapSettings:
        if not self.ldap_url:
            return self
        if not self.ldap_user_base:
            raise ValueError("SMA_LDAP_USER_BASE: must name where people are searched when "
                             "SMA_LDAP_URL is set, e.g. ou=people,dc=example,dc=org")
        if not self.roles_by_group:
            raise ValueError("SMA_ROLE_MAPPING: must map at least one directory group to a "
                             "role when SMA_LDAP_URL is set, or nobody could sign in")
        if self._only_dns_mapped() and any("=" not in k for k in self.roles_by_group):
            raise ValueError("SMA_ROLE_MAPPING: each key must be a group's DN, such as "
                             "cn=sma-admins,ou=groups,dc=example,dc=org")
        host = urlsplit(self.ldap_url).hostname
        if urlsplit(self.ldap_url).scheme == "ldap" and not self.ldap_start_tls \
                and host not in _LOOPBACK:
            raise ValueError("SMA_LDAP_URL: ldap:// would send passwords in clear text; use "
                             "ldaps:// or set SMA_LDAP_START_TLS=true")
        if self.ldap_bind_dn and not self.ldap_bind_password:
            raise ValueError("SMA_LDAP_BIND_PASSWORD: must be set with SMA_LDAP_BIND_DN")
        return self
