"""/api/v1/variables: variable assets; an encrypted variable's value never comes back."""

from __future__ import annotations

from flask.views import MethodView

from smacommon.models import Variable
from smacommon.schemas.asset import (
    AssetQueryArgsSchema,
    VariableCreateSchema,
    VariablePageSchema,
    VariableSchema,
    VariableUpdateSchema,
)
from smacommon.services import assets as svc
from smaweb.api._assets import commit, crypto, page
from smaweb.extensions import SmaBlueprint, db

blp = SmaBlueprint("variables", __name__, url_prefix="/api/v1/variables",
                   description="Variables that runbooks read and set.")


@blp.route("")
class Variables(MethodView):
    @blp.operation_id("listVariables")
    @blp.arguments(AssetQueryArgsSchema, location="query")
    @blp.response(200, VariablePageSchema)
    def get(self, args):
        """List variables."""
        return page(Variable, args)

    @blp.operation_id("createVariable")
    @blp.arguments(VariableCreateSchema)
    @blp.response(201, VariableSchema)
    def post(self, data):
        """Create a variable (value: any JSON; is_encrypted keeps it write-only)."""
        return commit(svc.create_variable(db.session, crypto(), **data))


@blp.route("/<name>")
class VariableByName(MethodView):
    @blp.operation_id("getVariable")
    @blp.response(200, VariableSchema)
    def get(self, name):
        """Get a variable (no value when encrypted)."""
        return svc.get_asset(db.session, Variable, name)

    @blp.operation_id("updateVariable")
    @blp.arguments(VariableUpdateSchema)
    @blp.response(200, VariableSchema)
    def patch(self, data, name):
        """Change a variable's value or description."""
        var = svc.get_asset(db.session, Variable, name)
        return commit(svc.update_variable(db.session, crypto(), var, data))

    @blp.operation_id("deleteVariable")
    @blp.response(204)
    def delete(self, name):
        """Delete a variable."""
        svc.delete_asset(db.session, Variable, name)
        db.session.commit()
