"""Engine, session scope, and migrations applied on start."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the bot read while the worker writes; foreign keys make ON DELETE CASCADE real.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@lru_cache(maxsize=16)
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# Alembic is imported where a migration is checked or run: a process that only opens the
# database (a delivery lane) saves its import (about half a second on these machines).


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def is_up_to_date(engine: Engine) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(str(engine.url)))
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current == set(script.get_heads())


def upgrade(url: str) -> None:
    """Apply pending migrations (every head: concurrent branches are fine)."""
    engine = get_engine(url)
    if is_up_to_date(engine):
        return
    from alembic import command

    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
    log.info("database schema migrated to the latest version (%s)", engine.url.render_as_string())


def init(url: str) -> Engine:
    """The engine for `url`, with the schema brought up to date first."""
    upgrade(url)
    return get_engine(url)


def _revision(message: str) -> None:
    """Autogenerate a migration from models.py against a scratch SQLite database."""
    import tempfile

    from alembic import command

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/scratch.db"
        upgrade(url)
        cfg = alembic_config(url)
        with get_engine(url).begin() as conn:
            cfg.attributes["connection"] = conn
            command.revision(cfg, message=message or "change", autogenerate=True)


if __name__ == "__main__":  # `make revision m="..."`
    if len(sys.argv) >= 3 and sys.argv[1] == "revision":
        _revision(sys.argv[2])
    else:
        print("usage: python -m digests.db revision MESSAGE", file=sys.stderr)
        sys.exit(2)
