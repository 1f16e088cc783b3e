"""/api/v1/credentials: user name and password pairs; the password is write-only."""

from __future__ import annotations

from flask.views import MethodView

from smacommon.models import Credential
from smacommon.schemas.asset import (
    AssetQueryArgsSchema,
    CredentialCreateSchema,
    CredentialPageSchema,
    CredentialSchema,
    CredentialUpdateSchema,
)
from smacommon.services import assets as svc
from smaweb.api._assets import commit, crypto, page
from smaweb.extensions import SmaBlueprint, db

blp = SmaBlueprint("credentials", __name__, url_prefix="/api/v1/credentials",
                   description="Credentials (SMA's PSCredential assets).")


@blp.route("")
class Credentials(MethodView):
    @blp.operation_id("listCredentials")
    @blp.arguments(AssetQueryArgsSchema, location="query")
    @blp.response(200, CredentialPageSchema)
    def get(self, args):
        """List credentials (user names only)."""
        return page(Credential, args)

    @blp.operation_id("createCredential")
    @blp.arguments(CredentialCreateSchema)
    @blp.response(201, CredentialSchema)
    def post(self, data):
        """Create a credential."""
        return commit(svc.create_credential(db.session, crypto(), **data))


@blp.route("/<name>")
class CredentialByName(MethodView):
    @blp.operation_id("getCredential")
    @blp.response(200, CredentialSchema)
    def get(self, name):
        """Get a credential (never its password)."""
        return svc.get_asset(db.session, Credential, name)

    @blp.operation_id("updateCredential")
    @blp.arguments(CredentialUpdateSchema)
    @blp.response(200, CredentialSchema)
    def patch(self, data, name):
        """Change the user name, password or description."""
        cred = svc.get_asset(db.session, Credential, name)
        return commit(svc.update_credential(db.session, crypto(), cred, data))

    @blp.operation_id("deleteCredential")
    @blp.response(204)
    def delete(self, name):
        """Delete a credential."""
        svc.delete_asset(db.session, Credential, name)
        db.session.commit()
