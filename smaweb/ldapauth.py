"""Directory (LDAP / Active Directory) people in the web service: signing in from the portal
or the API, and the re-check of their groups on the requests of their session.

A session keeps the role the directory gave at its last check. When that check is older
than SMA_LDAP_REFRESH_SECONDS (15 minutes at most) the next request reads the person's
groups again with sma's search account: someone removed from every mapped group, or from
the directory, loses the session there and then. While the directory does not answer,
their requests get 503 (their session stays, for when it is back); API tokens never ask it.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app, g
from flask_smorest import abort

from smacommon.db import utcnow
from smacommon.directory import Directory, Person, SignInRefused, principal_of
from smacommon.errors import NotFound
from smacommon.models import DirectorySession
from smacommon.services import directory_sessions as sessions
from smacommon.services.audit import record
from smaweb.auth import bind_actor
from smaweb.extensions import db
from smaweb.limiter import client_address

_FAILURES = "sma_auth_failures"


def enabled() -> bool:
    """Whether people may sign in with the directory (SMA_LDAP_URL is set)."""
    return "sma_directory" in current_app.extensions


def directory() -> Directory:
    if not enabled():
        raise NotFound("Directory sign-in is off on this service (SMA_LDAP_URL is not set); "
                       "sign in with an API token.")
    return current_app.extensions["sma_directory"]


def _limit_keys(username: str) -> tuple[object, object]:
    return client_address(), ("ldap-user", username.strip().lower()[:256])


def _refuse_if_limited(username: str) -> None:
    failures = current_app.extensions[_FAILURES]
    wait = max(failures.waiting(key) for key in _limit_keys(username))
    if wait:
        seconds = int(wait) + 1
        abort(429, message=f"Too many failed sign-ins for this user name or from "
                           f"{client_address()}; try again in {seconds} s.",
              headers={"Retry-After": str(seconds)})


def sign_in(username: str, password: str, door: str,
            lifetime: timedelta = sessions.LIFETIME) -> tuple[Person, str, DirectorySession]:
    """Check a person's name and password with the directory and open their session: the
    person, the session's secret (for a cookie or a bearer header) and its row. Failures
    count towards the limit of the address and of the user name."""
    found = directory()
    _refuse_if_limited(username)
    try:
        person = found.sign_in(username, password)
    except SignInRefused:
        failures = current_app.extensions[_FAILURES]
        for key in _limit_keys(username):
            failures.fail(key)
        raise
    bind_actor(person.principal, door)
    row, secret = sessions.open_session(db.session, person, door, lifetime)
    record(db.session, "session.sign_in", f"/api/v1/sessions/{row.id}", role=person.role,
           source="ldap")
    db.session.commit()
    return person, secret, row


def resume(row: DirectorySession, door: str) -> bool:
    """Who this live session is, in g (principal, role, groups), re-checked with the directory when
    due; False when the check ended it. DirectoryUnavailable (503) while it cannot ask."""
    settings = current_app.config["SMA_SETTINGS"]
    role, groups = row.role, row.groups or []
    factory = current_app.extensions["sma_db"].factory
    if sessions.is_due(row, settings.ldap_refresh_seconds):
        person = directory().refresh(row.user_name, row.user_dn)
        with factory() as own, own.begin():  # the request's own may be read-only
            if person is None or person.role is None:
                sessions.end(own, row.id)
                return False
            sessions.checked(own, row.id, person)
        role, groups = person.role, list(person.groups)
    elif row.last_seen_at < utcnow() - sessions.LAST_SEEN_EVERY:
        with factory() as own, own.begin():
            sessions.touch(own, row.id)
    g.principal, g.role, g.groups = principal_of(row.user_name, row.source), role, groups
    g.person_dn = row.user_dn  # their personal tokens are re-checked with the directory
    bind_actor(g.principal, door)
    return True


def ended_message() -> str:
    return ("Your directory account is no longer in a group that sma maps to a role (or is "
            "gone); you were signed out.")


def init_app(app: Flask) -> None:
    settings = app.config["SMA_SETTINGS"]
    if settings.ldap_url:
        app.extensions["sma_directory"] = Directory(settings)
