"""OpenID Connect people in the web service: the portal's sign-in through the provider, and
the refresh of their role on the requests of their session.

A sign-in keeps the state, nonce and PKCE verifier in the browser's signed session cookie
between the redirect to the provider and its callback; the callback takes them out once, so a
callback replayed in the same browser finds nothing to finish. The role can be read again
only from a new ID token: when the provider gave a refresh token, sma uses it every
SMA_OIDC_REFRESH_SECONDS and maps the new token's groups (someone removed from every mapped
group loses the session then, and the personal tokens they made; a lower role lowers those);
without one, the session ends at that interval. sma cannot ask the provider about someone
between their sign-ins, so their personal tokens also end within UNCHECKED_MAX_DAYS.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app, g

from smacommon.crypto import get_crypto
from smacommon.db import utcnow
from smacommon.directory import Person, principal_of
from smacommon.errors import NotFound, SmaError
from smacommon.models import DirectorySession
from smacommon.oidc import Authorization, OidcRefused, Provider
from smacommon.services import directory_sessions as sessions
from smacommon.services.audit import Actor, act_as, record
from smacommon.services.personal_tokens import follow_owner
from smaweb.auth import bind_actor
from smaweb.extensions import db
from smaweb.limiter import client_address

PENDING = "oidc"  # the key of a sign-in under way in the Flask session
PENDING_SECONDS = 600  # a sign-in not finished within ten minutes is started again


class SignInExpired(SmaError):
    status_code = 400
    message = ("This sign-in did not start here, was finished already, or took too long; "
               "sign in again.")


def enabled() -> bool:
    """Whether people may sign in with an OpenID provider (SMA_OIDC_PROVIDER_URL is set)."""
    return "sma_oidc" in current_app.extensions


def provider() -> Provider:
    if not enabled():
        raise NotFound("OpenID Connect sign-in is off on this service "
                       "(SMA_OIDC_PROVIDER_URL is not set).")
    return current_app.extensions["sma_oidc"]


def provider_name() -> str:
    return current_app.config["SMA_SETTINGS"].oidc_provider_name


def begin(redirect_uri: str, next_page: str) -> tuple[str, dict]:
    """The provider's URL to send the browser to, and what the session keeps until the
    callback; ProviderUnavailable when its discovery document cannot be read."""
    found: Authorization = provider().authorization(redirect_uri)
    pending = {"state": found.state, "nonce": found.nonce, "verifier": found.verifier,
               "next": next_page, "at": utcnow().timestamp()}
    return found.url, pending


def finish(pending: dict | None, args: dict, redirect_uri: str) -> tuple[Person, str]:
    """Finish a sign-in from the provider's callback: the person and their session's secret;
    SmaError saying why not (a wrong state, the provider's error, a refused token)."""
    state = args.get("state", "")
    if not pending or not isinstance(state, str) or not state \
            or state != pending.get("state") \
            or utcnow().timestamp() - float(pending.get("at", 0)) > PENDING_SECONDS:
        raise SignInExpired()
    if args.get("error"):
        said = str(args.get("error_description") or args["error"])[:200]
        raise OidcRefused(f"{provider_name()} did not sign you in: {said}")
    code = args.get("code")
    if not code:
        raise OidcRefused(f"{provider_name()} sent no sign-in code back; sign in again.")
    settings = current_app.config["SMA_SETTINGS"]
    done = provider().sign_in(code, redirect_uri, pending["verifier"], pending["nonce"])
    person = done.person
    bind_actor(person.principal, "portal")
    # without a refresh token the role cannot be read again: the session ends when it would
    lifetime = current_app.permanent_session_lifetime if done.refresh_token \
        else timedelta(seconds=settings.oidc_refresh_seconds)
    sealed = get_crypto(settings).encrypt(done.refresh_token) if done.refresh_token else None
    row, secret = sessions.open_session(db.session, person, "portal", lifetime, sealed)
    record(db.session, "session.sign_in", f"/api/v1/sessions/{row.id}", role=person.role,
           source="oidc")
    db.session.commit()
    return person, secret


def resume(row: DirectorySession, door: str) -> bool:
    """Who this live session is, in g (principal, role), its role read again from a new ID
    token when due; False when that ended it. ProviderUnavailable (503) while it cannot."""
    settings = current_app.config["SMA_SETTINGS"]
    role, groups = row.role, row.groups or []
    factory = current_app.extensions["sma_db"].factory
    if sessions.is_due(row, settings.oidc_refresh_seconds):
        crypto = get_crypto(settings)
        refreshed = provider().refresh(crypto.decrypt_str(row.refresh_token), row.user_dn) \
            if row.refresh_token else None
        principal = principal_of(row.user_name, "oidc")
        with factory() as own, own.begin():  # the request's own may be read-only
            if refreshed is not None:  # their personal tokens follow the role read now
                act_as(own, Actor(principal, door, client_address()))
                follow_owner(own, principal, refreshed.person.role)
            if refreshed is None or refreshed.person.role is None:
                sessions.end(own, row.id)
                return False
            sessions.checked(own, row.id, refreshed.person,
                             crypto.encrypt(refreshed.refresh_token))
        role, groups = refreshed.person.role, list(refreshed.person.groups)
    elif row.last_seen_at < utcnow() - sessions.LAST_SEEN_EVERY:
        with factory() as own, own.begin():
            sessions.touch(own, row.id)
    g.principal, g.role, g.groups = principal_of(row.user_name, "oidc"), role, groups
    g.person_source = "oidc"  # their personal tokens are bounded in time (smaweb.personal)
    bind_actor(g.principal, door)
    return True


def ended_message() -> str:
    return (f"Your sign-in with {provider_name()} has ended (it could not be renewed, or you "
            "are no longer in a group that sma maps to a role); sign in again.")


def init_app(app: Flask) -> None:
    settings = app.config["SMA_SETTINGS"]
    if settings.oidc_provider_url:
        app.extensions["sma_oidc"] = Provider(settings)
