"""`clapper inbound`: the SMTP listener for BOUNCE_DOMAIN, or one message from a file or an MTA pipe."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer

from digests import runner
from digests.cli.common import setup
from digests.cli.run_cmd import _render
from digests.inbound import outcomes


def inbound(
    file: str = typer.Option(
        None, "--file", help="Read one message from PATH (`-`: standard input) instead of listening."
    ),
    recipient: list[str] = typer.Option(
        None, "--recipient", help="Envelope recipient of that message (e.g. Postfix's ${recipient})."
    ),
    port: int = typer.Option(None, "--port", help="Listen on this port [default: INBOUND_PORT]."),
) -> None:
    """Read bounces, complaint reports and mailed unsubscribes (mail for BOUNCE_DOMAIN)."""
    settings, engine = setup()
    if not settings.bounce_domain:
        typer.echo("Set BOUNCE_DOMAIN first: it is the domain whose mail this reads.", err=True)
        raise typer.Exit(runner.EXIT_CONFIG)
    if file is not None:
        raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
        result = outcomes.handle(engine, settings, raw, list(recipient or []) or None)
        typer.echo(_render("cli/inbound_result.txt.j2", result=result), nl=False)
        return
    if port is not None:
        settings = settings.model_copy(update={"inbound_port": port})
    if not settings.inbound_port:
        typer.echo("Set INBOUND_PORT (or pass --port) for the SMTP listener.", err=True)
        raise typer.Exit(runner.EXIT_CONFIG)
    parts = runner.Parts(bot=None, scheduler=False, worker=False, web=False, inbound=True)
    raise typer.Exit(asyncio.run(runner.serve(settings, engine, parts)))


def register(app: typer.Typer) -> None:
    app.command("inbound")(inbound)
