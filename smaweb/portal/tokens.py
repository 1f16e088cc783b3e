"""My tokens: the signed-in person's personal tokens in the portal (list, make, revoke), made
by the same services as /api/v1/me/tokens. This is how someone who signs in through an
OpenID provider, which the command line cannot do, gets a token for `sma login`."""

from __future__ import annotations

from flask import g, redirect, render_template, request, url_for
from marshmallow import ValidationError

from smacommon.errors import ValidationFailed
from smacommon.models import ApiToken
from smacommon.roles import GLOBAL_ROLES, RANK, rank
from smacommon.schemas.auth import PersonalTokenCreateSchema
from smacommon.services import personal_tokens as svc
from smacommon.services.tokens import is_live
from smaweb import oidcauth
from smaweb.auth import current_principal
from smaweb.extensions import db
from smaweb.personal import create_mine
from smaweb.portal import bp
from smaweb.portal.session import login_required, saving

SHOWN = 200  # the newest of one's tokens listed


def _page(status: int = 200, **extra):
    """The page: the caller's tokens, and the form with the roles they may give."""
    stmt = svc.tokens_of(current_principal(), g.get("token_id"))
    tokens = db.session.scalars(stmt.order_by(ApiToken.created_at.desc(),
                                              ApiToken.id.desc()).limit(SHOWN)).all()
    oidc = g.get("person_source") == "oidc"
    return render_template(
        "my_tokens.html", tokens=tokens, is_live=is_live, personal=g.get("personal"),
        roles=[r for r in GLOBAL_ROLES if RANK[r] <= rank(g.role)],
        max_days=svc.UNCHECKED_MAX_DAYS if oidc else None,
        provider=oidcauth.provider_name() if oidc else None,
        api_url=request.url_root.rstrip("/"), **extra), status, {"Cache-Control": "no-store"}


def _form_errors(exc: ValidationError) -> str:
    fields = exc.messages if isinstance(exc.messages, dict) else {"form": exc.messages}
    said = "; ".join(f"{field}: {' '.join(map(str, why))}" for field, why in fields.items())
    return f"The token was not made ({said})."


@bp.route("/tokens/mine", methods=["GET", "POST"])
@login_required("none")
def my_tokens():
    """List your personal tokens; a post makes one (its secret in this answer only)."""
    if request.method != "POST":
        return _page()
    form = request.form
    with saving() as done:
        try:
            data = PersonalTokenCreateSchema().load({
                "name": form.get("name", "").strip(), "role": form.get("role") or None,
                "expires_in_days": form.get("expires_in_days", "").strip() or None})
        except ValidationError as exc:
            raise ValidationFailed(_form_errors(exc)) from exc
        token, secret = create_mine(**data)
    if done.error:
        return _page(done.error.status_code)
    # shown once, in this answer only (never stored, not even in the session)
    return _page(201, new_token=token, new_secret=secret)


@bp.route("/tokens/mine/<token_id>/revoke", methods=["POST"])
@login_required("none")
def my_token_revoke(token_id: str):
    """Revoke one of your tokens: it stops working at once."""
    with saving() as done:
        token = svc.revoke_own(db.session, current_principal(), g.get("token_id"), token_id)
        done.message = f"Token {token.name} revoked: it no longer works."
    if done.error:
        return _page(done.error.status_code)
    return redirect(url_for("portal.my_tokens"))
