"""Assets that runbooks use: variables, credentials, connection types, connections,
certificates. Secret values are stored only as Fernet tokens (`*_encrypted`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from smacommon.db import Base, UTCDateTime, utcnow
from smacommon.models.types import JSONType


class _Asset:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class _Limited(_Asset):
    # set: only jobs of runbooks with this tag may read it at run time (others get a 404)
    runbook_tag: Mapped[str | None] = mapped_column(String(64), default=None)


class Variable(_Limited, Base):
    __tablename__ = "variables"

    is_encrypted: Mapped[bool] = mapped_column(default=False)
    value: Mapped[Any | None] = mapped_column(JSONType, default=None)       # plain only
    value_encrypted: Mapped[str | None] = mapped_column(Text, default=None)  # JSON, encrypted


class Credential(_Limited, Base):
    __tablename__ = "credentials"

    username: Mapped[str] = mapped_column(String(256), default="")
    password_encrypted: Mapped[str] = mapped_column(Text)


class ConnectionType(_Asset, Base):
    __tablename__ = "connection_types"

    # [{"name": str, "is_encrypted": bool, "is_optional": bool}]
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)


class Connection(_Limited, Base):
    __tablename__ = "connections"

    connection_type_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connection_types.id", ondelete="RESTRICT"))
    values: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # plain fields
    values_encrypted: Mapped[str | None] = mapped_column(Text, default=None)  # JSON of secrets

    connection_type: Mapped[ConnectionType] = relationship(lazy="joined")


class Certificate(_Limited, Base):
    __tablename__ = "certificates"

    thumbprint: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text, default="")
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    exportable: Mapped[bool] = mapped_column(default=False)
    has_private_key: Mapped[bool] = mapped_column(default=False)
    # PKCS#12 (with the key, no password) or DER (certificate only), encrypted
    data_encrypted: Mapped[str] = mapped_column(Text)
