"""Apply the Alembic migrations: `sma db upgrade`, and at `sma up`."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision`."""
    path = Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    command.upgrade(alembic_config(url), revision)
    if path is not None and path.is_file() and path.stat().st_uid == os.geteuid():
        path.chmod(0o600)  # SQLite gives its -wal and -shm files the database's mode
