"""Shared fixtures: a real database per test (SQLite file, and PostgreSQL when configured)."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from digests import db
from digests.config import Settings

PG_ENV = "CLAPPER_TEST_DATABASE_URL"
PG_SKIP_REASON = (
    f"{PG_ENV} is not set; export it (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) "
    "to run the PostgreSQL tests, as .ci/run does"
)


@pytest.fixture(autouse=True)
def _root_logging() -> Iterator[None]:
    """A CLI command run in-process points the root logger at that test's captured stderr; put
    it back, or a later test's threads (aiosmtpd's) log into a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _pg_admin_engine() -> Engine:
    return create_engine(os.environ[PG_ENV], isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """A migrated PostgreSQL database that each test copies (CREATE DATABASE … TEMPLATE is fast)."""
    if not os.environ.get(PG_ENV):
        yield None
        return
    name = f"clapper_tmpl_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(os.environ[PG_ENV]).set(database=name).render_as_string(hide_password=False)
    db.upgrade(url)
    db.get_engine(url).dispose()
    db.get_engine.cache_clear()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _new_pg_database(template: str) -> tuple[str, str]:
    name = f"clapper_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    url = make_url(os.environ[PG_ENV]).set(database=name).render_as_string(hide_password=False)
    return name, url


def _drop_pg_database(name: str) -> None:
    admin = _pg_admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file that each test copies (running the migrations each time cost more)."""
    path = tmp_path_factory.mktemp("template") / "clapper.db"
    url = f"sqlite:///{path}"
    db.upgrade(url)
    # Disposed: the last connection's close checkpoints the WAL, so the one file holds it all.
    db.get_engine(url).dispose()
    db.get_engine.cache_clear()
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path, pg_template, sqlite_template) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file, then a PostgreSQL database when configured."""
    if request.param == "sqlite":
        path = tmp_path / "clapper.db"
        shutil.copyfile(sqlite_template, path)
        url = f"sqlite:///{path}"
        yield url
        db.get_engine(url).dispose()
        return
    if pg_template is None:
        pytest.skip(PG_SKIP_REASON)
    name, url = _new_pg_database(pg_template)
    yield url
    db.get_engine(url).dispose()
    _drop_pg_database(name)


@pytest.fixture
def engine(db_url) -> Engine:
    return db.init(db_url)


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    """Settings for a test: its own database, no .env from the developer's checkout."""
    return Settings(_env_file=None, database_url=db_url, secret_key="test-secret-key-0123456789abcdef-012")
