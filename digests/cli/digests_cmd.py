"""`clapper digests preview` and `clapper digests queue`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from digests import preview, queue
from digests.cli.common import setup
from digests.models import utcnow

digests_app = typer.Typer(help="Compose and queue digests.", no_args_is_help=True)


def preview_command(
    chat: int | None = typer.Option(None, "--chat", help="Telegram chat id of the subscriber."),
    email: str | None = typer.Option(None, "--email", help="Email address of the subscriber."),
    out: Path | None = typer.Option(None, "--out", help="Write the files here instead of printing."),
) -> None:
    """Render the next digest of one subscriber, without sending or advancing anything."""
    console = Console()
    if (chat is None) == (email is None):
        raise typer.BadParameter("give exactly one of --chat ID or --email ADDRESS")
    settings, engine = setup()
    found, rows = preview.preview(engine, settings, now=utcnow(), chat_id=chat, email=email)
    if found is None:
        console.print(
            f"[red]No subscriber with {'chat id ' + str(chat) if chat is not None else email}.[/red]"
        )
        raise typer.Exit(1)
    if not rows:
        console.print("This subscriber follows nothing (or has no such channel): no digest.")
        return
    if out is not None:
        for path in preview.write_files(rows, settings, out):
            console.print(f"wrote {path}")
        return
    for row in rows:
        if row.channel == "telegram":
            console.rule(f"Telegram {row.digest_key.partition('#')[2]} · {row.article_count} article(s)")
            console.print(row.body, markup=False, highlight=False)
        else:
            console.rule(f"Email to {row.recipient}")
            console.print(f"Subject: {row.subject}\n", markup=False, highlight=False)
            console.print(row.body_text or "", markup=False, highlight=False)


def queue_command(
    due: bool = typer.Option(
        True,
        "--due/--all",
        help="--due: only digests whose time has come (default); --all: a digest for everyone now.",
    ),
) -> None:
    """Queue digests in the outbox (`clapper deliver` sends them)."""
    settings, engine = setup()
    report = queue.queue_due(engine, settings, now=utcnow(), force=not due)
    Console().print(
        f"{report.due} of {report.checked} subscriber channel(s) due; queued {report.digests} digest(s) "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(report.by_channel.items())) or 'none'}), "
        f"{report.empty} 'nothing new', {report.messages} message(s); {report.skipped} with nothing new; "
        f"{report.articles} new article(s); {report.renders} render(s) for {report.subscription_sets} "
        f"subscription set(s)."
    )


def register(app: typer.Typer) -> None:
    digests_app.command("preview")(preview_command)
    digests_app.command("queue")(queue_command)
    app.add_typer(digests_app, name="digests")
