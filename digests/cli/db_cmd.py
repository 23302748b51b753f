"""`clapper db …`: schema management (every other command migrates by itself)."""

from __future__ import annotations

import typer

from digests import db
from digests.cli.common import load_settings

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade() -> None:
    """Apply pending migrations."""
    settings = load_settings()
    db.upgrade(settings.database_url)
    typer.echo(f"Database is up to date ({db.get_engine(settings.database_url).url.render_as_string()}).")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
