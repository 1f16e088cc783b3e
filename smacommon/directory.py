"""Sign-in with an LDAP directory or Active Directory (ldap3), and a person's role from groups.

A sign-in: sma binds with its search account (SMA_LDAP_BIND_DN), finds the one person
whose entry matches SMA_LDAP_USER_FILTER with the typed name escaped into it (never a
filter built from raw input), binds as that entry's DN with the typed password (never an
empty one: that is an anonymous bind, which "succeeds"), then reads the person's groups
with the search account (memberOf, or a search under SMA_LDAP_GROUP_BASE) and maps them to
a role through SMA_ROLE_MAPPING; the highest wins. A refresh does the same without the
password. Every connection has SMA_LDAP_TIMEOUT_SECONDS to connect and to each answer, so
a hung directory cannot hold a web worker. TLS (ldaps:// or StartTLS) requires a
certificate that SMA_LDAP_CA_FILE's CA (or the system's) signed for the URL's host
(smacommon.directory_tls); when it fails, the message says what an admin must fix.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ldap3 import NONE, SUBTREE, Connection, Server
from ldap3.core.exceptions import LDAPException, LDAPStartTLSError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from smacommon.directory_tls import CheckedTls, tls_problem
from smacommon.errors import SmaError
from smacommon.roles import RANK as _RANK
from smacommon.settings_ldap import LdapSettings

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 128
MAX_PASSWORD_CHARS = 1024
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_SPACED_SEPARATOR = re.compile(r"(?<!\\)\s*([,+=])\s*")  # not an escaped one (\,)
PPOLICY_OID = "1.3.6.1.4.1.42.2.27.8.5.1"
# Active Directory says why a bind failed in its message: "... data 775, ..."
_AD_REASONS = {"775": "is locked", "533": "is disabled", "701": "has expired",
               "532": "has an expired password", "773": "must change its password first"}
_INVALID_CREDENTIALS = 49


class DirectoryUnavailable(SmaError):
    status_code = 503
    message = "The directory did not answer; sign in with an API token, or try again later."


class SignInRefused(SmaError):
    status_code = 401
    message = "Wrong user name or password."


class NoRole(SmaError):
    status_code = 403
    message = "You are in no directory group that sma maps to a role."


@dataclass(frozen=True)
class Person:
    """Someone the directory (or an OpenID provider: `source` oidc, `dn` its `sub`) knows:
    the name sma records, their DN, their mapped role (None: in no mapped group), their
    groups (normalized DNs, or an OpenID provider's group names: what `group:` role
    bindings name)."""

    name: str
    dn: str
    role: str | None
    source: str = "ldap"
    groups: tuple[str, ...] = ()

    @property
    def principal(self) -> str:
        """How the audit and started_by name them."""
        return principal_of(self.name, self.source)


def principal_of(name: str, source: str = "ldap") -> str:
    return f"user:{name} ({source})"


def name_of(principal: str) -> str:
    """The name in a principal_of(name, source)."""
    return re.sub(r" \((ldap|oidc)\)$", "", principal.removeprefix("user:"))


def check_username(name: str) -> str:
    """The typed name, or SignInRefused saying what is wrong with it."""
    if not name or not name.strip():
        raise SignInRefused("Type your directory user name.")
    if len(name) > MAX_NAME_CHARS:
        raise SignInRefused(f"A user name has at most {MAX_NAME_CHARS} characters.")
    if _CONTROL_CHARS.search(name):
        raise SignInRefused("A user name cannot hold control characters.")
    return name.strip()


def normal_dn(dn: str) -> str:
    """A DN compared without regard to case or spaces around separators."""
    # ldap3 refuses a space before an attribute type ("cn=x, ou=y"), as people type DNs
    dn = _SPACED_SEPARATOR.sub(r"\1", dn.strip())
    try:
        return "".join(f"{attr.strip().lower()}={value.strip().lower()}{sep.strip()}"
                       for attr, value, sep in parse_dn(dn, escape=False))
    except LDAPException:
        return dn.lower()


class Directory:
    """The directory of SMA_LDAP_URL, as `settings` describe it."""

    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        self._roles = {normal_dn(group): role
                       for group, role in settings.roles_by_group.items()}
        url = urlsplit(settings.ldap_url)
        self._server = Server(settings.ldap_url, use_ssl=url.scheme == "ldaps",
                              tls=CheckedTls(settings.ldap_ca_file),
                              get_info=NONE, connect_timeout=settings.ldap_timeout_seconds)

    def _open(self) -> Connection:
        """A connection (StartTLS when asked), not yet bound; DirectoryUnavailable if not."""
        # whole seconds: ldap3 packs it into SO_RCVTIMEO as an integer
        receive = max(1, math.ceil(self.settings.ldap_timeout_seconds))
        conn = Connection(self._server, receive_timeout=receive,
                          raise_exceptions=False, read_only=True)
        try:
            conn.open()
            # False on an ldaps:// connection (TLS already); a refusal raises
            if self.settings.ldap_start_tls and not conn.start_tls() \
                    and not self._server.ssl:
                raise LDAPStartTLSError("StartTLS did not start")
        except LDAPException as exc:
            _close(conn)
            problem = tls_problem(conn, exc)
            if problem:
                log.error("LDAP TLS with %s failed: %s (%s)", self.settings.ldap_url,
                          problem, exc)
                raise DirectoryUnavailable(f"{problem}. Until then, sign in with an API "
                                           "token.") from None
            log.warning("LDAP directory %s unreachable: %s", self.settings.ldap_url, exc)
            raise DirectoryUnavailable(
                "The directory did not answer, so sma cannot check directory passwords now; "
                "try again later, or sign in with an API token.") from None
        return conn

    def _searcher(self) -> Connection:
        """A connection bound as the search account."""
        conn = self._open()
        try:
            ok = conn.bind() if self.settings.ldap_bind_dn == "" else conn.rebind(
                self.settings.ldap_bind_dn, self.settings.ldap_bind_password)
        except LDAPException as exc:
            conn.unbind()
            log.warning("LDAP search bind failed: %s", exc)
            raise DirectoryUnavailable("The directory stopped answering; try again later, "
                                       "or sign in with an API token.") from None
        if not ok:
            conn.unbind()
            log.error("LDAP search bind as %s refused: %s", self.settings.ldap_bind_dn,
                      conn.result.get("description"))
            raise DirectoryUnavailable("sma could not sign in to the directory with its "
                                       "own account (SMA_LDAP_BIND_DN); tell an admin.")
        return conn

    def _find(self, conn: Connection, username: str) -> tuple[str, str, list[str]] | None:
        """(dn, recorded name, memberOf values) of the one person of this name, else None."""
        query = self.settings.ldap_user_filter.replace("{username}",
                                                       escape_filter_chars(username))
        attribute = self.settings.ldap_username_attribute
        wanted = [attribute] + ([] if self.settings.ldap_group_base else ["memberOf"])
        self._search(conn, self.settings.ldap_user_base, query, SUBTREE, wanted, 2)
        entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
        if len(entries) != 1:
            if len(entries) > 1:
                log.warning("LDAP: %d entries match one user name; refused", len(entries))
            return None
        attrs = entries[0].get("attributes", {})
        names = attrs.get(attribute) or [username]
        name = names[0] if isinstance(names, list) else names
        groups = attrs.get("memberOf") or []
        return entries[0]["dn"], str(name), [str(g) for g in groups]

    def _search(self, conn: Connection, base: str, query: str, scope, attributes,
                size_limit: int = 0) -> None:
        try:
            conn.search(base, query, scope, attributes=attributes, size_limit=size_limit)
        except LDAPException as exc:
            log.warning("LDAP search failed: %s", exc)
            raise DirectoryUnavailable("The directory stopped answering; try again later, "
                                       "or sign in with an API token.") from None

    def _role(self, conn: Connection, dn: str, member_of: list[str]
              ) -> tuple[str | None, tuple[str, ...]]:
        """The person's mapped role (the highest) and all their groups, normalized."""
        groups = member_of
        if self.settings.ldap_group_base:
            query = self.settings.ldap_group_filter.replace("{user_dn}",
                                                            escape_filter_chars(dn))
            self._search(conn, self.settings.ldap_group_base, query, SUBTREE, [])
            groups = [e["dn"] for e in conn.response or [] if e.get("type") == "searchResEntry"]
        normal = tuple(dict.fromkeys(map(normal_dn, groups)))
        roles = [self._roles[g] for g in normal if g in self._roles]
        return (max(roles, key=_RANK.__getitem__) if roles else None), normal

    def sign_in(self, username: str, password: str) -> Person:
        """The person this name and password are; SignInRefused, NoRole or
        DirectoryUnavailable, each saying what happened."""
        username = check_username(username)
        if not password:
            raise SignInRefused("Type your password.")  # an empty one binds anonymously
        if len(password) > MAX_PASSWORD_CHARS:
            raise SignInRefused("Wrong user name or password.")
        conn = self._searcher()
        try:
            found = self._find(conn, username)
            if found is None:
                raise SignInRefused()
            dn, name, member_of = found
            self._bind_as(dn, password)
            role, groups = self._role(conn, dn, member_of)
            person = Person(name, dn, role, groups=groups)
        finally:
            conn.unbind()
        if person.role is None:
            raise NoRole(f"You ({person.name}) are in no directory group that sma maps to a "
                         "role (SMA_ROLE_MAPPING); ask an admin to add you to one.")
        return person

    def _bind_as(self, dn: str, password: str) -> None:
        conn = self._open()
        try:
            ok = conn.rebind(dn, password, controls=[(PPOLICY_OID, False, None)])
        except LDAPException as exc:
            if "invalidCredentials" in type(exc).__name__ or "49" in str(exc):
                ok = False
            else:
                conn.unbind()
                log.warning("LDAP bind as a person failed: %s", exc)
                raise DirectoryUnavailable("The directory stopped answering; try again "
                                           "later, or sign in with an API token.") from None
        result = conn.result or {}
        conn.unbind()
        if ok:
            return
        reason = _refusal(result)
        if reason:
            raise SignInRefused(f"Your directory account {reason}; ask an admin.")
        raise SignInRefused()

    def refresh(self, username: str, dn: str) -> Person | None:
        """The person's role now, read with the search account; None when they are gone
        (or no longer the same entry). DirectoryUnavailable when the directory is down."""
        conn = self._searcher()
        try:
            found = self._find(conn, username)
            if found is None or normal_dn(found[0]) != normal_dn(dn):
                return None
            role, groups = self._role(conn, found[0], found[2])
            return Person(found[1], found[0], role, groups=groups)
        finally:
            conn.unbind()


def _close(conn: Connection) -> None:
    """Let go of a connection that failed to open (its socket may be half set up)."""
    try:
        conn.unbind()
    except Exception:  # it is going away either way
        pass


def _refusal(result: dict) -> str:
    """Why a bind was refused beyond a wrong password ("" when it was just that)."""
    for oid, control in (result.get("controls") or {}).items():
        if oid == PPOLICY_OID and _ppolicy_error(control.get("value") or b"") == 1:
            return "is locked"
    message = str(result.get("message") or "")
    match = re.search(r"\bdata ([0-9a-f]{3})\b", message)
    if match and match.group(1) in _AD_REASONS:
        return _AD_REASONS[match.group(1)]
    if result.get("result") not in (None, 0, _INVALID_CREDENTIALS):
        return f"was refused ({result.get('description')})"
    return ""


def _ppolicy_error(value: bytes) -> int | None:
    """The `error` of a password policy response control (RFC draft behera): a SEQUENCE
    holding [0] warning and [1] error (ENUMERATED), BER-encoded."""
    if len(value) < 2 or value[0] != 0x30:
        return None
    i = 2
    while i + 1 < len(value):
        tag, length = value[i], value[i + 1]
        if tag == 0x81 and length == 1 and i + 2 < len(value):
            return value[i + 2]
        i += 2 + length
    return None
