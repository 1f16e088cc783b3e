"""Who is signed in to the portal: a token (or a directory name and password) typed once,
then a signed HTTP-only cookie.

The cookie holds a random session id (never the token) and a CSRF secret; the session itself
lives on the server (smacommon.services.portal_sessions). Every request looks it up with its
token, so signing out, or revoking or expiring the token, ends it at once, for every copy of
the cookie. Every form post carries the CSRF secret (htmx sends it as a header), compared in
constant time.
"""

from __future__ import annotations

import hmac
import os
import secrets
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

from flask import Flask, abort, current_app, flash, g, redirect, request, session, url_for

from smacommon.db import utcnow
from smacommon.errors import SmaError
from smacommon.models import Runbook
from smacommon.roles import RANK, rank
from smacommon.services import directory_sessions
from smacommon.services import portal_sessions as sessions
from smacommon.services.access import limit_to
from smacommon.services.role_bindings import EVERYTHING
from smacommon.services.tokens import JOB_TOKEN_PREFIX, find_token_by_hash, hash_token
from smaweb import ldapauth, people
from smaweb.auth import bind_actor, scope_for
from smaweb.extensions import db
from smaweb.personal import act_as_token

# the pages a caller limited by role bindings may open (the dashboard, too, shows only theirs)
SCOPED_PAGES = ("/runbooks", "/jobs", "/schedules", "/webhooks")
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def secret_key(settings) -> str:
    """SMA_SECRET_KEY, else a key made once in the data folder (mode 0600)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir).expanduser() / "secret.key"
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    return key


def _admin_token_hash() -> str | None:
    configured = current_app.config["SMA_SETTINGS"].admin_token
    return hash_token(configured) if configured else None


def sign_in(secret: str) -> bool:
    """Start a session for the token a person typed; False when it is no valid API token."""
    secret = secret.strip()
    if not secret or secret.startswith(JOB_TOKEN_PREFIX):
        return False
    token_hash = hash_token(secret)
    admin = _admin_token_hash()
    if not (admin and hmac.compare_digest(token_hash, admin)) and \
            find_token_by_hash(db.session, token_hash) is None:
        return False
    _end_current()  # signing in again ends the session signed in before
    sid = sessions.open_session(db.session, token_hash, current_app.permanent_session_lifetime)
    db.session.commit()
    session.clear()
    session["sid"] = sid
    session["csrf"] = secrets.token_urlsafe(32)
    session.permanent = True
    return True


def sign_in_person(username: str, password: str) -> None:
    """Start a session for a directory person (smaweb.ldapauth); SmaError saying why not."""
    _, secret, _ = ldapauth.sign_in(username, password, "portal",
                                    current_app.permanent_session_lifetime)
    open_person_session(secret)


def open_person_session(secret: str) -> None:
    """The cookie of a person's new session (directory or OpenID); the one before ends."""
    _end_current()  # signing in again ends the session signed in before
    session.clear()
    session["dsid"] = secret
    session["csrf"] = secrets.token_urlsafe(32)
    session.permanent = True


def _end_current() -> None:
    if session.get("sid"):
        sessions.end_session(db.session, session["sid"])
    if session.get("dsid"):
        directory_sessions.end_session(db.session, session["dsid"])
    db.session.commit()


def sign_out() -> None:
    """End the session on the server (every copy of the cookie) and forget the cookie."""
    _end_current()
    session.clear()


def _load_person(secret: str) -> bool:
    """A directory or OpenID person's session (their role re-checked when due)."""
    row = people.find(secret, "portal")
    if row is None:
        session.clear()
        return False
    if not people.resume(row, "portal"):
        session.clear()
        flash(people.ended_message(row), "error")
        return False
    g.portal = True
    return True


def load_user() -> bool:
    """Set g.principal and g.role from the session cookie; False when signed out."""
    sid = session.get("sid")
    if not sid:
        return _load_person(session["dsid"]) if session.get("dsid") else False
    found = sessions.find_live_session(db.session, sid, _admin_token_hash())
    if found is None:
        session.clear()
        return False
    portal_session, token = found
    if token is None:
        g.principal, g.role = "admin", "admin"
    elif not act_as_token(token):  # a personal token whose owner lost their access
        session.clear()
        return False
    g.portal = True
    if portal_session.last_seen_at < utcnow() - sessions.LAST_SEEN_EVERY:
        # its own short transaction: the request's own may be read-only
        with current_app.extensions["sma_db"].factory() as own, own.begin():
            sessions.touch(own, portal_session.id)
    bind_actor(g.principal, "portal")
    return True


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(sent.encode(), csrf_token().encode()):
        abort(400, "The form expired or did not come from this site: reload the page and "
                   "try again.")


def can(role: str, runbook: Runbook | None = None) -> bool:
    """Whether the signed-in user has at least `role`, globally or (given `runbook`) over that
    runbook through their role bindings: the controls they may not use are hidden."""
    if runbook is None:
        return rank(g.get("role")) >= RANK[role]
    scope = scope_for(role)
    return scope is EVERYTHING or (scope is not None and scope.covers(runbook))


def can_any(role: str) -> bool:
    """Whether the signed-in user has `role` over any runbook (globally or by a binding): a
    form that makes a runbook thing inside their bindings is shown."""
    return scope_for(role) is not None


def require(role: str) -> None:
    """403 (a page saying which role it needs) unless the user has at least `role`, or their
    role bindings give it over some runbooks: then the page shows only those (as the API)."""
    scope = scope_for(role)
    if scope is EVERYTHING:
        return
    if scope is None:
        abort(403, f"This needs the {role} role; you are signed in as {g.role}.")
    if request.path != "/" and not request.path.startswith(SCOPED_PAGES):
        abort(403, f"This needs the {role} role over everything; your role bindings give it "
                   "only over some runbooks (see Runbooks and Jobs).")
    limit_to(db.session, scope)


def login_required(role: str = "reader"):
    """A portal view for signed-in users with at least `role`; form posts need CSRF."""
    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not load_user():
                if request.headers.get("HX-Request"):
                    return "", 401, {"HX-Redirect": url_for("portal.login")}
                return redirect(url_for("portal.login", next=request.full_path.rstrip("?")))
            if request.method not in ("GET", "HEAD"):
                check_csrf()
            require(role)
            return view(*args, **kwargs)
        return wrapper
    return decorate


class Saving:
    """What `saving` did: `ok` after a commit, else the refused change's `error`."""

    def __init__(self, message: str | None) -> None:
        self.message, self.ok, self.error = message, False, None


@contextmanager
def saving(message: str | None = None):
    """Run a form's change: commit and flash `message` (or `.message` set inside), or on a
    refusal (SmaError) roll back and flash what to fix. Every portal form goes through it."""
    outcome = Saving(message)
    try:
        yield outcome
        db.session.commit()
        outcome.ok = True
        if outcome.message:
            flash(outcome.message, "ok")
    except SmaError as exc:
        db.session.rollback()
        outcome.error = exc
        flash(exc.message, "error")


def init_app(app: Flask) -> None:
    settings = app.config["SMA_SETTINGS"]
    app.config.setdefault("SECRET_KEY", None)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = secret_key(settings)
    app.config.update(
        SESSION_COOKIE_NAME="sma_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.api_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=12 * 3600,
    )
    app.jinja_env.globals.update(csrf_token=csrf_token, can=can, can_any=can_any)
