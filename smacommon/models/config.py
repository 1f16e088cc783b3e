"""Service-wide settings changed at run time (SMA's Set-SmaAdminConfiguration)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from smacommon.db import Base, UTCDateTime, utcnow
from smacommon.models.types import JSONType


class ServiceSetting(Base):
    __tablename__ = "service_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_by: Mapped[str] = mapped_column(String(200), default="")
