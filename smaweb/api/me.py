"""/api/v1/me/tokens: personal tokens, which anyone signed in makes, lists and revokes for
themselves (never with more than their own role); admins see and revoke them at /tokens."""

from __future__ import annotations

from flask import g
from flask.views import MethodView

from smacommon.models import ApiToken
from smacommon.schemas.auth import (
    NewTokenSchema,
    PersonalTokenCreateSchema,
    TokenPageSchema,
    TokenSchema,
)
from smacommon.schemas.common import PageArgsSchema
from smacommon.services import personal_tokens as svc
from smaweb.auth import current_principal
from smaweb.extensions import SmaBlueprint, db
from smaweb.pagination import keyset_page
from smaweb.personal import create_mine

blp = SmaBlueprint("me", __name__, url_prefix="/api/v1/me",
                   description="Your own personal tokens.")


@blp.route("/tokens")
class MyTokens(MethodView):
    @blp.operation_id("listMyTokens")
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, TokenPageSchema)
    def get(self, args):
        """List the tokens you made for yourself (never their secrets)."""
        stmt = svc.tokens_of(current_principal(), g.get("token_id"))
        items, cursor = keyset_page(stmt, ApiToken.created_at,
                                    ApiToken.id, args["limit"], args["cursor"],
                                    db.session.scalars)
        return {"items": items, "next_cursor": cursor}

    @blp.operation_id("createMyToken")
    @blp.arguments(PersonalTokenCreateSchema)
    @blp.response(201, NewTokenSchema)
    def post(self, data):
        """Make a token for yourself, with at most your own role; its secret is in this
        answer only. It ends when the token you used here is revoked, or when you leave
        the directory's groups."""
        token, secret = create_mine(**data)
        db.session.commit()
        token.token = secret
        return token


@blp.route("/tokens/<token_id>", methods=["DELETE"])
@blp.operation_id("revokeMyToken")
@blp.response(200, TokenSchema)
def revoke(token_id):
    """Revoke one of your tokens: it stops working at once."""
    token = svc.revoke_own(db.session, current_principal(), g.get("token_id"), token_id)
    db.session.commit()
    return token
