"""What every command shares: settings, logging, and a migrated database."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from digests import db, logs
from digests.config import Settings, get_settings


def setup() -> tuple[Settings, Engine]:
    """Settings from the environment, logging configured, schema brought up to date."""
    settings = get_settings()
    logs.configure(settings)
    return settings, db.init(settings.database_url)
