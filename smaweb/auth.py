"""Who is calling (bearer tokens), what their role lets them do, and who the audit names.

Roles, from least to most: reader (GET), operator (+ start, stop, suspend, resume jobs),
author (+ create and change runbooks, assets, schedules, webhooks, modules), admin (+ tokens,
workers, audit, maintenance). Role bindings (/api/v1/role-bindings) add a role over some
runbooks: a caller whose global role (`none` for a token that has only its bindings) is below
what a request needs may still make it on the runbooks its bindings cover, and then finds
nothing else (404) and lists only those (the request's session is limited:
smacommon/services/access.py). A job's own token reaches only /api/v1/runtime and the module
index (/api/v1/modules/simple/), which also takes a token as HTTP basic auth's password: pip and
uv send it so from the credentials of an index URL.
"""

from __future__ import annotations

import hmac
import logging

from flask import Flask, current_app, g, request
from flask_smorest import abort

from smacommon.roles import RANK, rank
from smacommon.services.access import Scope, limit_to
from smacommon.services.audit import Actor, act_as
from smacommon.services.directory_sessions import SECRET_PREFIX as PERSON_SECRET_PREFIX
from smacommon.services.role_bindings import EVERYTHING, grant
from smacommon.services.tokens import JOB_ROLE, JOB_TOKEN_PREFIX, find_running_job, find_token
from smaweb.extensions import READ_METHODS as _READ_METHODS
from smaweb.extensions import db
from smaweb.limiter import Failures, client_address, count_failure

log = logging.getLogger(__name__)

RUNTIME_PREFIX = "/api/v1/runtime/"
WEBHOOK_INVOKE = "/api/v1/webhooks/invoke/"
SIGN_IN = "/api/v1/sessions"  # a directory person's name and password for a bearer secret
MODULE_INDEX = "/api/v1/modules/simple/"
PERSONAL_PREFIX = "/api/v1/me/"
# what role bindings can open to a caller whose global role is too low
SCOPED_PREFIXES = ("/api/v1/runbooks", "/api/v1/jobs", "/api/v1/webhooks", "/api/v1/schedules")
_OPERATOR_ACTIONS = ("/start", "/stop", "/suspend", "/resume")
_ADMIN_PREFIXES = ("/api/v1/tokens", "/api/v1/audit", "/api/v1/admin", "/api/v1/workers",
                   "/api/v1/role-bindings")


def required_role(method: str, path: str) -> str:
    """The least role that may make this request."""
    if path.startswith(PERSONAL_PREFIX):
        return "none"  # anyone signed in: their own tokens
    if path.startswith(_ADMIN_PREFIXES):
        return "admin"
    if method in _READ_METHODS:
        return "reader"
    if method == "POST" and (path.endswith(_OPERATOR_ACTIONS) or path == "/api/v1/jobs/batch"):
        return "operator"
    return "author"


def _unauthorized(message: str, error: str | None = None, wrong_token: bool = False) -> None:
    """401 (a wrong token counts towards its address's limit: maybe 429)."""
    if wrong_token:
        count_failure()
    challenge = 'Bearer realm="sma"' + (f', error="{error}"' if error else "")
    if _on_index():  # pip and uv answer a Basic challenge with an index URL's credentials
        challenge = f'Basic realm="sma", {challenge}'
        if error is None:
            message += f" The index also takes it in its URL: http://sma:<token>@host{MODULE_INDEX}."
    abort(401, message=message, headers={"WWW-Authenticate": challenge})


def _bearer() -> str:
    """The bearer token sent ("" when none)."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return ""
    return secret


def _on_index() -> bool:
    return request.path.startswith(MODULE_INDEX) and request.method in _READ_METHODS


def _basic_password() -> str:
    """On the module index, the password of HTTP basic auth ("" elsewhere, or when none)."""
    credentials = request.authorization if _on_index() else None
    if credentials is None or credentials.type != "basic":
        return ""
    return (credentials.password or "").strip()


def require_secret(expected: str, what: str) -> None:
    """401 unless the request carries `expected` as its bearer token (for endpoints outside
    /api/v1 with a token of their own, such as /metrics)."""
    secret = _bearer()
    if not secret:
        _unauthorized(f"Missing token: send the header 'Authorization: Bearer <{what}>'.")
    if not hmac.compare_digest(secret.encode(), expected.encode()):
        _unauthorized(f"Wrong token: {what} is wanted here.", "invalid_token", wrong_token=True)


def _authenticate() -> None:
    if not request.path.startswith("/api/v1") or request.path.startswith(WEBHOOK_INVOKE):
        return  # a webhook's token is in its URL: the view checks it
    if request.path == SIGN_IN and request.method == "POST":
        return  # a person signs in with a name and password: the view checks them
    header = request.headers.get("Authorization", "")
    if not header and request.method in _READ_METHODS and request.cookies:
        # the portal's pages read the API (live output, downloads) with their session
        # cookie; a cookie is never enough to change anything through the API
        from smaweb.portal.session import load_user

        if load_user():
            _authorize()
            return
    secret = _bearer() or _basic_password()
    if not secret:
        _unauthorized("Missing token: send the header 'Authorization: Bearer <token>'.")
    if secret.startswith(PERSON_SECRET_PREFIX):
        _person(secret)
        _authorize()
        return
    configured = current_app.config["SMA_SETTINGS"].admin_token
    if configured and hmac.compare_digest(secret.encode(), configured.encode()):
        g.principal, g.role = "admin", "admin"
    elif secret.startswith(JOB_TOKEN_PREFIX):  # a job's token is never an API token
        job_id = find_running_job(db.session, secret)
        if job_id is None:
            _unauthorized("Invalid job token: the job has ended, or never was.",
                          "invalid_token", wrong_token=True)
        g.principal, g.role, g.job_id = f"job:{job_id}", JOB_ROLE, job_id
    elif (token := find_token(db.session, secret)) is not None:
        from smaweb.personal import act_as_token

        if not act_as_token(token):
            _unauthorized("This personal token ended with its owner's access (the token "
                          "that made it was revoked, or its owner left the directory's "
                          "groups).", "invalid_token")
    else:
        _unauthorized("Invalid, expired or revoked token.", "invalid_token", wrong_token=True)
    bind_actor(g.principal, "job" if g.role == JOB_ROLE else "api")
    _authorize()


def _person(secret: str) -> None:
    """A directory person's bearer secret (`sma login --user`): their session, re-checked
    with the directory when due (smaweb.ldapauth)."""
    from smaweb import people

    row = people.find(secret, "api")
    if row is None:
        _unauthorized("Your sign-in has ended or expired: sign in again with "
                      "`sma login URL --user NAME`.", "invalid_token", wrong_token=True)
    if not people.resume(row, "api"):
        _unauthorized(people.ended_message(row), "invalid_token")


def _authorize() -> None:
    runtime = request.path.startswith(RUNTIME_PREFIX)
    if g.role == JOB_ROLE:
        if not runtime and not _on_index():
            abort(403, message="A job token may only read assets and set variables "
                               f"({RUNTIME_PREFIX}...) and read the module index "
                               f"({MODULE_INDEX}).")
        return
    if runtime:
        abort(403, message="Secret values are given only to a running job, with its own token "
                           "(SMA_JOB_TOKEN); use the asset endpoints to manage assets.")
    needed = required_role(request.method, request.path)
    if rank(g.role) < RANK[needed]:
        _scoped(needed)


def principals() -> list[str]:
    """Whom role bindings may name for this caller: themselves and their directory groups."""
    return [g.principal, *(f"group:{group}" for group in g.get("groups", ()))]


def scope_for(needed: str) -> Scope | None:
    """Where the caller may act with `needed`: EVERYTHING when their global role is enough,
    else over what their role bindings give (a Scope; None: nowhere). Read once a request
    per role: the API's and the portal's checks and the portal's buttons all ask here."""
    if rank(g.get("role")) >= RANK[needed]:
        return EVERYTHING
    granted = g.setdefault("sma_grants", {})
    if needed not in granted:
        granted[needed] = grant(db.session, principals(), needed)
    return granted[needed]


def _scoped(needed: str) -> None:
    """A caller whose global role is below `needed`: their role bindings may give it over
    some runbooks; the request's session is then limited to those (smacommon access)."""
    scope = scope_for(needed)
    if scope is None:
        abort(403, message=f"This needs the {needed} role; your token has the {g.role} role.")
    if scope is EVERYTHING:
        return
    if not request.path.startswith(SCOPED_PREFIXES):
        abort(403, message=f"This needs the {needed} role over everything; your role "
                           f"bindings give it only over some runbooks (and their jobs, "
                           f"webhooks and schedules).")
    limit_to(db.session, scope)


def bind_actor(name: str, door: str) -> None:
    """Who acts in this request: the services audit every change they make as them."""
    act_as(db.session, Actor(name, door, client_address()))


def current_principal() -> str:
    """Who is acting, as recorded in started_by, published_by and the audit."""
    return g.get("principal", "anonymous")


def started_by() -> str:
    """What the jobs this caller starts, stops or resumes record as started_by: user:<who>
    (a directory person's principal already reads user:<name> (ldap))."""
    principal = current_principal()
    return principal if principal.startswith("user:") else f"user:{principal}"


def init_app(app: Flask) -> None:
    app.extensions["sma_auth_failures"] = Failures()
    app.before_request(_authenticate)
