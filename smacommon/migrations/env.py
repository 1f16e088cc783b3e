"""Alembic environment: the URL comes from the sma settings (or the caller's config)."""

from __future__ import annotations

from alembic import context

import smacommon.models  # noqa: F401  (registers every table)
from smacommon.db import Base, get_engine
from smacommon.models.types import JSONType

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = get_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


def _render_item(type_, obj, autogen_context):
    # write our JSON column type by name, not as its PostgreSQL variant spelled out
    if type_ == "type" and obj is JSONType:
        autogen_context.imports.add("import smacommon.models.types")
        return "smacommon.models.types.JSONType"
    return False


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
