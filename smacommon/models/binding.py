"""Role bindings: a role over a scope (everything, the runbooks with a tag, one runbook)
given to a principal (token:<name>, user:<name> (ldap)) or a directory group (group:<DN>)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smacommon.db import Base, UTCDateTime, utcnow


class RoleBinding(Base):
    __tablename__ = "role_bindings"
    __table_args__ = (Index("ix_role_bindings_principal", "principal"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    principal: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    scope_type: Mapped[str] = mapped_column(String(16))  # everything, tag or runbook
    # the tag, or the runbook's id (its name may change hands after a delete); "" for everything
    scope_value: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")

    def __repr__(self) -> str:
        return f"<RoleBinding {self.principal} {self.role} {self.scope_type}:{self.scope_value}>"
