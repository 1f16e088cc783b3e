"""Sign-in with an OpenID Connect provider: the authorization code flow with PKCE (Authlib's
OAuth2Session), the ID token checked (PyJWT: signature from the provider's JWKS, issuer,
audience, expiry, issue time, nonce), and a person's role from the groups claim through
SMA_ROLE_MAPPING, as for the directory (smacommon.directory).

The provider's discovery document and keys are fetched when first needed and kept; a token
signed with a key id sma has not seen makes it fetch the keys once more (the provider rotated
its keys). ID tokens come from the token endpoint, over the back channel, never from the
browser. Every call to the provider has SMA_OIDC_TIMEOUT_SECONDS, so a provider that hangs
cannot hold a web worker.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass

import jwt
import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from smacommon.directory import MAX_NAME_CHARS, Person, normal_dn
from smacommon.errors import SmaError
from smacommon.settings_ldap import ROLES
from smacommon.settings_oidc import OidcSettings

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")  # never "none", nor HS256 (keyed with the client secret)
LEEWAY_SECONDS = 60  # clocks of sma and the provider may differ this much
DISCOVERY_TTL_SECONDS = 3600
_RANK = {role: i for i, role in enumerate(ROLES)}
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class ProviderUnavailable(SmaError):
    status_code = 503
    message = "The OpenID provider did not answer; try again later, or sign in another way."


class OidcRefused(SmaError):
    status_code = 401
    message = "The OpenID provider's answer was refused; sign in again."


class OidcNoRole(SmaError):
    status_code = 403
    message = "You are in no group that sma maps to a role."


@dataclass(frozen=True)
class Authorization:
    """Where to send the browser, and what the callback must match (kept in its session)."""

    url: str
    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True)
class SignedIn:
    """A person the provider vouched for, and its refresh token (None: it gave none)."""

    person: Person
    refresh_token: str | None


class Provider:
    """The provider of SMA_OIDC_PROVIDER_URL, as `settings` describe it."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self.issuer = settings.oidc_provider_url
        self._roles = dict(settings.roles_by_group)
        self._discovery: dict | None = None
        self._discovered_at = 0.0
        self._keys: dict[str | None, jwt.PyJWK] = {}

    # -- the provider's documents ---------------------------------------------------------
    def _get_json(self, url: str) -> dict:
        try:
            answer = requests.get(url, timeout=self.settings.oidc_timeout_seconds)
            answer.raise_for_status()
            body = answer.json()
        except (requests.RequestException, ValueError) as exc:
            log.warning("OpenID provider: GET %s failed: %s", url, exc)
            raise ProviderUnavailable(
                f"{self.settings.oidc_provider_name} did not answer, so sma cannot sign you "
                "in with it now; try again later, or sign in another way.") from None
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"{url} did not answer a JSON object.")
        return body

    def discovery(self) -> dict:
        """The provider's /.well-known/openid-configuration (kept for an hour)."""
        if self._discovery is None or \
                time.monotonic() - self._discovered_at > DISCOVERY_TTL_SECONDS:
            found = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if found.get("issuer", "").rstrip("/") != self.issuer:
                log.error("OpenID provider names issuer %r, not %r", found.get("issuer"),
                          self.issuer)
                raise ProviderUnavailable("The OpenID provider's discovery document names "
                                          "another issuer than SMA_OIDC_PROVIDER_URL; tell "
                                          "an admin.")
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(found.get(field), str):
                    raise ProviderUnavailable(f"The OpenID provider's discovery document has "
                                              f"no {field}; tell an admin.")
            self._discovery, self._discovered_at = found, time.monotonic()
        return self._discovery

    def _fetch_keys(self) -> None:
        keys: dict[str | None, jwt.PyJWK] = {}
        for entry in self._get_json(self.discovery()["jwks_uri"]).get("keys") or []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                keys[entry.get("kid")] = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue  # a key of a type sma does not verify with
        self._keys = keys

    def _key(self, kid: str | None) -> jwt.PyJWK:
        """The provider's key `kid`; the keys are fetched again once for an unknown id."""
        fetched = not self._keys
        if fetched:
            self._fetch_keys()
        found = self._pick(kid)
        if found is None and not fetched:
            self._fetch_keys()  # the provider rotated its keys since sma last read them
            found = self._pick(kid)
        if found is None:
            raise OidcRefused("The ID token is signed with a key the provider does not "
                              "publish; sign in again.")
        return found

    def _pick(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    # -- the flow -------------------------------------------------------------------------
    def _client(self, redirect_uri: str | None = None) -> OAuth2Session:
        methods = self.discovery().get("token_endpoint_auth_methods_supported") or []
        method = "client_secret_post" if methods and "client_secret_basic" not in methods \
            else "client_secret_basic"
        return OAuth2Session(self.settings.oidc_client_id, self.settings.oidc_client_secret,
                             token_endpoint_auth_method=method, scope=self.settings.oidc_scopes,
                             redirect_uri=redirect_uri, code_challenge_method="S256",
                             default_timeout=self.settings.oidc_timeout_seconds)

    def authorization(self, redirect_uri: str) -> Authorization:
        """A new sign-in: the provider's URL with a fresh state, nonce and PKCE verifier."""
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                self.discovery()["authorization_endpoint"], state=state, nonce=nonce,
                code_verifier=verifier)
        return Authorization(url, state, nonce, verifier)

    def _token(self, call, what: str) -> dict:
        try:
            return call()
        except OAuthError as exc:
            description = str(exc.description or "")[:200]
            raise OidcRefused(f"{self.settings.oidc_provider_name} refused {what} "
                              f"({exc.error}{': ' + description if description else ''}); "
                              "sign in again.") from None
        except (requests.RequestException, ValueError) as exc:
            log.warning("OpenID provider: token endpoint failed: %s", exc)
            raise ProviderUnavailable() from None

    def sign_in(self, code: str, redirect_uri: str, verifier: str, nonce: str) -> SignedIn:
        """Exchange the callback's code for tokens and the person they name: OidcRefused,
        OidcNoRole or ProviderUnavailable, each saying what happened."""
        with self._client(redirect_uri) as client:
            token = self._token(lambda: client.fetch_token(
                self.discovery()["token_endpoint"], code=code, code_verifier=verifier,
                grant_type="authorization_code"), "the sign-in code (used already, or expired)")
            claims = self.verify(token.get("id_token"), nonce)
            person = self._person(client, token, claims)
        if person.role is None:
            raise OidcNoRole(f"You ({person.name}) are in no group that sma maps to a role "
                             f"(the {self.settings.oidc_groups_claim!r} claim, "
                             "SMA_ROLE_MAPPING); ask an admin to add you to one.")
        return SignedIn(person, token.get("refresh_token"))

    def refresh(self, refresh_token: str, subject: str) -> SignedIn | None:
        """The person's role now, from a new ID token got with `refresh_token`; None when the
        provider refused it (the sign-in ended there) or names someone else."""
        with self._client() as client:
            try:
                token = self._token(lambda: client.refresh_token(
                    self.discovery()["token_endpoint"], refresh_token=refresh_token),
                    "the refresh token")
                claims = self.verify(token.get("id_token"), None)
            except OidcRefused as exc:
                log.info("OpenID session not refreshed: %s", exc.message)
                return None
            if claims["sub"] != subject:
                return None
            person = self._person(client, token, claims)
        return SignedIn(person, token.get("refresh_token") or refresh_token)

    # -- the ID token and the person ------------------------------------------------------
    def verify(self, id_token: object, nonce: str | None) -> dict:
        """The claims of a valid ID token for this client; OidcRefused saying what is wrong.
        `nonce` None: a refreshed token, which carries none to compare."""
        if not isinstance(id_token, str) or not id_token:
            raise OidcRefused("The provider sent no ID token (is \"openid\" in SMA_OIDC_SCOPES?)")
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise OidcRefused("The provider's ID token is not a JWT.") from None
        if header.get("alg") not in ALGORITHMS:
            raise OidcRefused(f"The ID token's algorithm {header.get('alg')!r} is not one sma "
                              "accepts (RS256, PS256, ES256, EdDSA and their kin).")
        key = self._key(header.get("kid"))
        try:
            claims = jwt.decode(id_token, key, algorithms=[header["alg"]],
                                audience=self.settings.oidc_client_id, issuer=self.issuer,
                                leeway=LEEWAY_SECONDS,
                                options={"require": ["iss", "sub", "aud", "exp", "iat"]})
        except jwt.ExpiredSignatureError:
            raise OidcRefused("The ID token has expired; sign in again (is this machine's "
                              "clock right?).") from None
        except jwt.InvalidAudienceError:
            raise OidcRefused("The ID token is for another client than SMA_OIDC_CLIENT_ID.") \
                from None
        except jwt.InvalidIssuerError:
            raise OidcRefused("The ID token comes from another issuer than "
                              "SMA_OIDC_PROVIDER_URL.") from None
        except jwt.InvalidSignatureError:
            raise OidcRefused("The ID token's signature does not verify: it was changed "
                              "or not signed by the provider.") from None
        except jwt.PyJWTError as exc:
            raise OidcRefused(f"The ID token was refused: {exc}.") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.settings.oidc_client_id:
            raise OidcRefused("The ID token names several audiences but not sma as its "
                              "authorized party (azp).")
        if nonce is not None and not hmac.compare_digest(
                str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise OidcRefused("The ID token does not answer this sign-in (its nonce differs); "
                              "sign in again.")
        return claims

    def _person(self, client: OAuth2Session, token: dict, claims: dict) -> Person:
        wanted = (self.settings.oidc_username_claim, self.settings.oidc_groups_claim)
        if any(name not in claims for name in wanted):
            claims = {**self._userinfo(client, token, claims["sub"]), **claims}
        name = claims.get(self.settings.oidc_username_claim)
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS \
                or _CONTROL_CHARS.search(name):
            raise OidcRefused(f"The provider gave no usable user name in the "
                              f"{self.settings.oidc_username_claim!r} claim "
                              "(SMA_OIDC_USERNAME_CLAIM); tell an admin.")
        groups = claims.get(self.settings.oidc_groups_claim) or []
        groups = [groups] if isinstance(groups, str) else groups
        roles = [self._roles[g] for g in groups if isinstance(g, str) and g in self._roles]
        role = max(roles, key=_RANK.__getitem__) if roles else None
        return Person(name.strip(), claims["sub"], role, source="oidc",
                      groups=tuple(sorted({normal_dn(g) for g in groups if isinstance(g, str)})))

    def _userinfo(self, client: OAuth2Session, token: dict, subject: str) -> dict:
        """The userinfo endpoint's claims (some providers put groups only there)."""
        url = self.discovery().get("userinfo_endpoint")
        if not url or not token.get("access_token"):
            return {}
        try:
            answer = client.get(url, timeout=self.settings.oidc_timeout_seconds)
            found = answer.json() if answer.ok else {}
        except (requests.RequestException, ValueError, OAuthError):
            raise ProviderUnavailable() from None
        return found if isinstance(found, dict) and found.get("sub") == subject else {}
