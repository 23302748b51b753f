"""`clapper broadcast --file MESSAGE` and `clapper announcements`: admin announcements."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from digests import broadcast, telegram_html
from digests.cli.common import setup
from digests.db import session_scope


def broadcast_command(
    file: Path = typer.Option(
        ..., "--file", "-f", exists=True, dir_okay=False, help="The message (Telegram HTML or plain text)."
    ),
    channels: str = typer.Option("telegram,email", "--channels", help="telegram, email or telegram,email."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Queue without asking."),
) -> None:
    """Send an announcement to every active reader of the chosen channels (through the outbox)."""
    settings, engine = setup()
    err = Console(stderr=True)
    try:
        chosen = broadcast.parse_channels(channels)
        body = broadcast.prepare(file.read_text(encoding="utf-8"))
    except broadcast.BroadcastError as exc:
        err.print("[red]Not sent:[/red]")
        for problem in exc.problems:
            err.print(f"  {problem}", markup=False)
        raise typer.Exit(1) from exc
    shown = broadcast.preview(settings, body)
    out = Console()
    if chosen in ("telegram", "both"):
        out.rule("Telegram")
        out.print(shown.telegram, markup=False, highlight=False)
    if chosen in ("email", "both"):
        out.rule("Email")
        out.print(f"Subject: {shown.email.subject}\n", markup=False, highlight=False)
        out.print(shown.email.text, markup=False, highlight=False)
    out.rule()
    if not yes and not typer.confirm(f"Queue this for {chosen}?", default=False):
        typer.echo("Nothing queued.")
        raise typer.Exit(1)
    with session_scope(engine) as session:
        draft = broadcast.create_draft(session, text=body)
    result = broadcast.queue(engine, settings, draft.id, channels=chosen)
    typer.echo(
        f"Announcement #{result.announcement_id} queued for {result.total} reader(s); "
        "the delivery worker sends it (see `clapper announcements`)."
    )


def announcements_command(
    cancel: int | None = typer.Option(
        None, "--cancel", help="Withdraw what is still queued of this announcement."
    ),
    limit: int = typer.Option(10, "--limit", help="How many to list."),
) -> None:
    """Past announcements with queued / sent / failed counts."""
    _settings, engine = setup(needs_secret=False)
    if cancel is not None:
        try:
            done = broadcast.cancel(engine, cancel)
        except broadcast.BroadcastError as exc:
            Console(stderr=True).print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        typer.echo(
            f"Announcement #{cancel}: {done.sent} sent, {done.failed} failed, {done.cancelled} withdrawn."
        )
        return
    with session_scope(engine) as session:
        rows = broadcast.history(session, limit=limit)
        table = Table(title="Announcements")
        for col in ("#", "Created", "Channels", "State", "Queued", "Sent", "Failed", "Cancelled", "Text"):
            table.add_column(col)
        for a, p in rows:
            text = telegram_html.visible_text(a.body).replace("\n", " ")
            table.add_row(
                str(a.id),
                a.created_at.strftime("%Y-%m-%d %H:%M"),
                a.channels,
                p.state,
                str(p.queued),
                str(p.sent),
                str(p.failed),
                str(p.cancelled),
                text[:40] + ("…" if len(text) > 40 else ""),
            )
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("broadcast")(broadcast_command)
    app.command("announcements")(announcements_command)
