"""/api/v1/role-bindings (admin): a role over everything, a tag's runbooks or one runbook,
given to a token, a directory person or a directory group."""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import select

from smacommon.models import RoleBinding
from smacommon.schemas.auth import (
    RoleBindingCreateSchema,
    RoleBindingPageSchema,
    RoleBindingQueryArgsSchema,
    RoleBindingSchema,
)
from smacommon.services import role_bindings as svc
from smaweb.auth import current_principal
from smaweb.extensions import SmaBlueprint, db
from smaweb.pagination import keyset_page

blp = SmaBlueprint("role_bindings", __name__, url_prefix="/api/v1/role-bindings",
                   description="Permissions per runbook: role bindings (admin).")


@blp.route("")
class RoleBindings(MethodView):
    @blp.operation_id("listRoleBindings")
    @blp.arguments(RoleBindingQueryArgsSchema, location="query")
    @blp.response(200, RoleBindingPageSchema)
    def get(self, args):
        """List role bindings, newest first (filter by principal)."""
        stmt = select(RoleBinding)
        if args.get("principal"):
            stmt = stmt.where(RoleBinding.principal == args["principal"])
        items, cursor = keyset_page(stmt, RoleBinding.created_at, RoleBinding.id,
                                    args["limit"], args["cursor"], db.session.scalars)
        svc.runbook_names(db.session, items)
        return {"items": items, "next_cursor": cursor}

    @blp.operation_id("createRoleBinding")
    @blp.arguments(RoleBindingCreateSchema)
    @blp.response(201, RoleBindingSchema)
    def post(self, data):
        """Give a principal or a group a role over everything, a tag's runbooks or one
        runbook; it adds to their global role, from their next request."""
        binding = svc.create_binding(db.session, created_by=current_principal(), **data)
        db.session.commit()
        svc.runbook_names(db.session, [binding])
        return binding


@blp.route("/<binding_id>")
class RoleBindingById(MethodView):
    @blp.operation_id("getRoleBinding")
    @blp.response(200, RoleBindingSchema)
    def get(self, binding_id):
        """Get a role binding."""
        binding = svc.get_binding(db.session, binding_id)
        svc.runbook_names(db.session, [binding])
        return binding

    @blp.operation_id("deleteRoleBinding")
    @blp.response(204)
    def delete(self, binding_id):
        """Delete a role binding: what it gave ends with the next request."""
        svc.delete_binding(db.session, svc.get_binding(db.session, binding_id))
        db.session.commit()
