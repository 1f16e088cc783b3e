"""The portal's sign-in with an OpenID provider: /login/oidc sends the browser to the
provider, /login/oidc/callback finishes (smaweb.oidcauth checks everything it brings back).
Every refusal is the sign-in page with what happened, never an error page."""

from __future__ import annotations

from flask import flash, redirect, request, session, url_for

from smacommon.errors import SmaError
from smaweb import oidcauth
from smaweb.limiter import count_failure
from smaweb.portal import bp
from smaweb.portal.pages import login_page, next_page
from smaweb.portal.session import open_person_session


def _callback_url() -> str:
    return url_for("portal.login_oidc_callback", _external=True)


@bp.route("/login/oidc")
def login_oidc():
    """Start a sign-in with the provider: a redirect to its authorization endpoint."""
    oidcauth.provider()  # 404 when OpenID sign-in is off
    try:
        url, pending = oidcauth.begin(_callback_url(), next_page())
    except SmaError as exc:  # the provider is down or misconfigured
        flash(exc.message, "error")
        return login_page("token", exc.status_code)
    session[oidcauth.PENDING] = pending
    return redirect(url)


@bp.route("/login/oidc/callback")
def login_oidc_callback():
    """Finish a sign-in: the provider sends the browser back here with a code and state."""
    oidcauth.provider()
    pending = session.pop(oidcauth.PENDING, None)  # one use, whatever happens next
    try:
        _, secret = oidcauth.finish(pending, request.args, _callback_url())
    except SmaError as exc:  # a wrong state, a refused code or token, no mapped group
        if exc.status_code in (400, 401):
            count_failure()
        flash(exc.message, "error")
        return login_page("token", exc.status_code)
    open_person_session(secret)
    return redirect(next_page((pending or {}).get("next")))
