"""`clapper run`, `clapper scheduler`, `clapper status`: the service and its health check."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import NoReturn

import typer
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.exc import SQLAlchemyError

from digests import db, logs, runner, status
from digests.cli.common import load_settings, setup
from digests.config import TEMPLATES_DIR, Settings

EXIT_CONFIG = runner.EXIT_CONFIG


def _render(name: str, **values) -> str:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined, keep_trailing_newline=True
    )
    return env.get_template(name).render(**values)


def _setup_message(settings: Settings, web: bool) -> str:
    return _render(
        "cli/run_setup.txt.j2",
        telegram=settings.telegram_enabled,
        email=settings.email_enabled,
        smtp_host=settings.smtp_host,
        web=web,
    )


def _tell(settings: Settings, message: str, event: str) -> None:
    # With LOG_JSON the operator reads a log shipper: one JSON line per event, even for advice.
    if settings.log_json:
        logging.getLogger("digests.runner").warning(message.strip(), extra={"event": event})
    else:
        typer.echo(message, err=True, nl=False)


def run() -> None:
    """The service: Telegram bot, scheduler (ingest + digests) and delivery worker in one process."""
    settings, engine = setup()
    web = bool(settings.public_base_url)
    if not settings.telegram_enabled:
        _tell(settings, _setup_message(settings, web), "run.setup_hint")
        if not settings.email_enabled:
            raise typer.Exit(EXIT_CONFIG)
    bot = None
    if settings.telegram_enabled:
        from bot.app import build_application  # telegram.ext loads only when the bot runs

        bot = build_application
    inbound = bool(settings.bounce_domain and settings.inbound_port)
    parts = runner.Parts(bot=bot, scheduler=True, worker=True, web=web, inbound=inbound)
    raise typer.Exit(asyncio.run(runner.serve(settings, engine, parts)))


def scheduler() -> None:
    """Scheduler and delivery worker without the bot (for deployments that run the bot elsewhere)."""
    settings, engine = setup()
    parts = runner.Parts(bot=None, scheduler=True, worker=True, web=False)
    raise typer.Exit(asyncio.run(runner.serve(settings, engine, parts)))


def status_command(
    as_json: bool = typer.Option(False, "--json", help="One JSON object, for monitoring."),
    max_queue_age: float = typer.Option(
        None, help="Minutes a ready message may wait [default: STATUS_MAX_QUEUE_AGE_MINUTES]."
    ),
    max_ingest_intervals: int = typer.Option(
        None, help="Ingest intervals without success [default: STATUS_MAX_INGEST_INTERVALS]."
    ),
) -> None:
    """Health: last ingest per source, queue depth, oldest message, deliveries in 24 h; exit 1 if stuck."""
    from datetime import timedelta

    # A health check only reads: it must not migrate (and race the service doing so at start).
    settings = load_settings()
    logs.configure(settings)
    engine = db.get_engine(settings.database_url)
    try:
        if not db.is_up_to_date(engine):
            _unhealthy(
                as_json,
                "the database schema is not up to date: start `clapper run` or run `clapper db upgrade`",
            )
        result = status.collect(
            engine,
            settings,
            max_queue_age=timedelta(minutes=max_queue_age) if max_queue_age is not None else None,
            max_ingest_intervals=max_ingest_intervals,
        )
    except SQLAlchemyError as exc:
        _unhealthy(as_json, f"the database cannot be read: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        typer.echo(_render("cli/status.txt.j2", s=result, when=_when(result.now)), nl=False)
    raise typer.Exit(0 if result.healthy else 1)


def _unhealthy(as_json: bool, problem: str) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"healthy": False, "problems": [problem]}, ensure_ascii=False))
    else:
        typer.echo(_render("cli/status_unreadable.txt.j2", problem=problem), nl=False)
    raise typer.Exit(1)


def _when(now: datetime):
    def fmt(moment: datetime | None) -> str:
        if moment is None:
            return "never"
        seconds = int((now - moment).total_seconds())
        if seconds < 0:
            ago = f"in {_span(-seconds)}"
        else:
            ago = f"{_span(seconds)} ago"
        return f"{moment:%Y-%m-%d %H:%M} ({ago})"

    return fmt


def _span(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("scheduler")(scheduler)
    app.command("status")(status_command)
