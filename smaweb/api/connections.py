"""/api/v1/connection-types and /api/v1/connections: typed sets of fields, some encrypted."""

from __future__ import annotations

from flask.views import MethodView

from smacommon.models import Connection, ConnectionType
from smacommon.schemas.asset import (
    AssetQueryArgsSchema,
    ConnectionCreateSchema,
    ConnectionPageSchema,
    ConnectionSchema,
    ConnectionTypeCreateSchema,
    ConnectionTypePageSchema,
    ConnectionTypeSchema,
    ConnectionUpdateSchema,
)
from smacommon.services import assets as svc
from smaweb.api._assets import commit, crypto, page
from smaweb.extensions import SmaBlueprint, db

types_blp = SmaBlueprint("connection_types", __name__, url_prefix="/api/v1/connection-types",
                         description="Connection types: the fields a connection has.")
blp = SmaBlueprint("connections", __name__, url_prefix="/api/v1/connections",
                   description="Connections; encrypted fields are write-only.")


@types_blp.route("")
class ConnectionTypes(MethodView):
    @types_blp.operation_id("listConnectionTypes")
    @types_blp.arguments(AssetQueryArgsSchema, location="query")
    @types_blp.response(200, ConnectionTypePageSchema)
    def get(self, args):
        """List connection types."""
        return page(ConnectionType, args)

    @types_blp.operation_id("createConnectionType")
    @types_blp.arguments(ConnectionTypeCreateSchema)
    @types_blp.response(201, ConnectionTypeSchema)
    def post(self, data):
        """Create a connection type with its fields (each may be encrypted, optional)."""
        return commit(svc.create_connection_type(db.session, **data))


@types_blp.route("/<name>")
class ConnectionTypeByName(MethodView):
    @types_blp.operation_id("getConnectionType")
    @types_blp.response(200, ConnectionTypeSchema)
    def get(self, name):
        """Get a connection type."""
        return svc.get_asset(db.session, ConnectionType, name)

    @types_blp.operation_id("deleteConnectionType")
    @types_blp.response(204)
    def delete(self, name):
        """Delete a connection type no connection uses."""
        svc.delete_asset(db.session, ConnectionType, name)
        db.session.commit()


@blp.route("")
class Connections(MethodView):
    @blp.operation_id("listConnections")
    @blp.arguments(AssetQueryArgsSchema, location="query")
    @blp.response(200, ConnectionPageSchema)
    def get(self, args):
        """List connections (plain fields only)."""
        return page(Connection, args)

    @blp.operation_id("createConnection")
    @blp.arguments(ConnectionCreateSchema)
    @blp.response(201, ConnectionSchema)
    def post(self, data):
        """Create a connection of a type, with its field values."""
        return commit(svc.create_connection(db.session, crypto(), **data))


@blp.route("/<name>")
class ConnectionByName(MethodView):
    @blp.operation_id("getConnection")
    @blp.response(200, ConnectionSchema)
    def get(self, name):
        """Get a connection (its encrypted fields are named, never shown)."""
        return svc.get_asset(db.session, Connection, name)

    @blp.operation_id("updateConnection")
    @blp.arguments(ConnectionUpdateSchema)
    @blp.response(200, ConnectionSchema)
    def patch(self, data, name):
        """Change field values (only those given) or the description."""
        conn = svc.get_asset(db.session, Connection, name)
        return commit(svc.update_connection(db.session, crypto(), conn, data))

    @blp.operation_id("deleteConnection")
    @blp.response(204)
    def delete(self, name):
        """Delete a connection."""
        svc.delete_asset(db.session, Connection, name)
        db.session.commit()
