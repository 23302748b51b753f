"""What every command shares: settings, logging, and a migrated database."""

from __future__ import annotations

import typer
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from digests import db, logs
from digests.config import Settings, get_settings, settings_problem

# Settings an operator must fix: one line each, no traceback (like a missing bot token).
EXIT_SETTINGS = 2


def load_settings(*, needs_secret: bool = False) -> Settings:
    """The settings, or exit 2 with one clear line when a setting (or the key, if asked) is refused."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        typer.echo(settings_problem(exc), err=True)
        raise typer.Exit(EXIT_SETTINGS) from None
    if needs_secret:
        try:
            settings.secret()
        except ValueError as exc:  # secrets_rule.WeakSecret
            typer.echo(str(exc), err=True)
            raise typer.Exit(EXIT_SETTINGS) from None
    return settings


def setup(*, needs_secret: bool = True) -> tuple[Settings, Engine]:
    """Settings from the environment, logging configured, schema brought up to date.

    `needs_secret` (the default, so a new command is safe): the command makes or checks tokens
    or secrets, so SECRET_KEY must pass secrets_rule before anything runs."""
    settings = load_settings(needs_secret=needs_secret)
    logs.configure(settings)
    return settings, db.init(settings.database_url)
