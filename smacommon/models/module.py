"""Uploaded modules (Python wheels and sdists, PowerShell modules, Bash libraries) and their
content, kept once per SHA-256 in the database so that every web process and worker host
reaches it through the same service (docs/modules.md)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from smacommon.db import Base, UTCDateTime, utcnow


class ModuleBlob(Base):
    """The bytes of an uploaded file, addressed by their SHA-256."""

    __tablename__ = "module_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    # read only when asked for: listing modules never loads their content
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<ModuleBlob {self.sha256[:12]} ({self.size} bytes)>"


class Module(Base):
    """One version of an uploaded module; (normalized name, version) is unique."""

    __tablename__ = "modules"
    __table_args__ = (UniqueConstraint("normalized_name", "version",
                                       name="uq_module_name_version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128))  # as its metadata (or file name) gives it
    # PEP 503 (lower case, each run of -_. one -) for every type: one name, one module
    normalized_name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[str] = mapped_column(String(64))
    module_type: Mapped[str] = mapped_column(String(16))  # python, powershell, bash
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(ForeignKey("module_blobs.sha256"), index=True)
    uploaded_by: Mapped[str] = mapped_column(String(200), default="")
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    blob: Mapped[ModuleBlob] = relationship(lazy="select")

    @property
    def created_at(self) -> datetime:  # for keyset paging
        return self.uploaded_at

    def __repr__(self) -> str:
        return f"<Module {self.name} {self.version} ({self.module_type})>"
