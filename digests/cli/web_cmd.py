"""`clapper web`: the confirm / unsubscribe / preferences pages behind email links."""

from __future__ import annotations

import asyncio

import typer

from digests.cli.common import setup


def web_command(
    host: str | None = typer.Option(None, "--host", help="Bind address (default WEB_HOST)."),
    port: int | None = typer.Option(None, "--port", help="Port (default WEB_PORT)."),
) -> None:
    """Serve the web app (put it behind HTTPS at PUBLIC_BASE_URL)."""
    settings, engine = setup()
    from digests import web

    if not settings.public_base_url:
        typer.echo("PUBLIC_BASE_URL is not set: emails carry no links to these pages.", err=True)
    typer.echo(f"Serving on http://{host or settings.web_host}:{port or settings.web_port}")
    asyncio.run(web.serve(settings, engine, host=host, port=port))


def register(app: typer.Typer) -> None:
    app.command("web")(web_command)
