"""/api/v1/tokens (admin): API tokens with a role; the secret is shown once."""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import select

from smacommon.models import ApiToken
from smacommon.schemas.auth import NewTokenSchema, TokenCreateSchema, TokenPageSchema, TokenSchema
from smacommon.schemas.common import PageArgsSchema
from smacommon.services.tokens import create_token, revoke_token
from smaweb.extensions import SmaBlueprint, db
from smaweb.pagination import keyset_page

blp = SmaBlueprint("tokens", __name__, url_prefix="/api/v1/tokens",
                   description="API tokens and their roles (admin).")


@blp.route("")
class Tokens(MethodView):
    @blp.operation_id("listTokens")
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, TokenPageSchema)
    def get(self, args):
        """List tokens (never their secrets)."""
        items, cursor = keyset_page(select(ApiToken), ApiToken.created_at, ApiToken.id,
                                    args["limit"], args["cursor"], db.session.scalars)
        return {"items": items, "next_cursor": cursor}

    @blp.operation_id("createToken")
    @blp.arguments(TokenCreateSchema)
    @blp.response(201, NewTokenSchema)
    def post(self, data):
        """Create a token; its secret is in this answer and nowhere else, ever."""
        token, secret = create_token(db.session, **data)
        db.session.commit()
        token.token = secret
        return token


@blp.route("/<token_id>", methods=["DELETE"])
@blp.operation_id("revokeToken")
@blp.response(200, TokenSchema)
def revoke(token_id):
    """Revoke a token: it stops working at once."""
    token = revoke_token(db.session, token_id)
    db.session.commit()
    return token
